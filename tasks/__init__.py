"""Skills bundled with skillq; the default value of ``SKILLQ_SKILLS``."""

from .basic import echo, sleepy, stream_story, write_report

__all__ = ["echo", "sleepy", "stream_story", "write_report"]
