"""The A2A project's conformance kit (a2a-tck) run against a real ``skillq serve``."""
