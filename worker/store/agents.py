"""Agents as the registry shows them: live workers grouped by the agent they serve.

A worker serves one agent (``SKILLQ_AGENT``); several workers, and several
hosts, may serve the same one. An agent's skills, tags, capabilities and
queues are the union over its live workers, so a rolling deploy that adds a
skill shows it as soon as one new worker is up.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from ..core.errors import ConfigurationError
from ..core.settings import AGENT_NAME
from ..interface.capabilities import AgentInfo

SCHEME = "skillq://"
DEFAULT_AGENT = "skillq"


def agent_url(name: str) -> str:
    return SCHEME + name


def agent_name(target: str) -> str:
    """``skillq://name`` or ``name`` → ``name``."""
    return target[len(SCHEME) :] if target.startswith(SCHEME) else target


def describe_agent(name: str, description: str, capabilities: Iterable[str]) -> dict[str, Any]:
    """What a worker announces about its agent (the ``agent`` of its registry entry)."""
    return {"name": name, "description": description, "capabilities": sorted(set(capabilities))}


def agents_from(workers: Iterable[Mapping[str, Any]]) -> dict[str, AgentInfo]:
    """Live agents by name, merged from live workers' registry entries."""
    merged: dict[str, dict[str, Any]] = {}
    for entry in workers:
        agent = entry.get("agent") or {}
        name = str(agent.get("name") or DEFAULT_AGENT)
        item = merged.setdefault(
            name,
            {
                "description": "",
                "capabilities": set(),
                "queues": set(),
                "workers": [],
                "skills": {},
            },
        )
        item["description"] = item["description"] or str(agent.get("description") or "")
        item["capabilities"] |= set(agent.get("capabilities") or ())
        item["queues"] |= set(entry.get("queues") or ())
        item["workers"].append(str(entry.get("hostname", "?")))
        for skill in entry.get("skills") or ():
            item["skills"].setdefault(skill["name"], skill)
    found = {}
    for name, item in sorted(merged.items()):
        skills = item["skills"]
        tags = sorted({tag for skill in skills.values() for tag in skill.get("tags") or ()})
        found[name] = AgentInfo(
            name=name,
            url=agent_url(name),
            skills=tuple(sorted(skills)),
            tags=tuple(tags),
            capabilities=tuple(sorted(item["capabilities"])),
            metadata={
                "description": item["description"],
                "queues": sorted(item["queues"]),
                "workers": sorted(item["workers"]),
                "skills": {key: skills[key] for key in sorted(skills)},
            },
        )
    return found


def matching(
    agents: Iterable[AgentInfo],
    *,
    tag: str | None = None,
    capability: str | None = None,
    skill: str | None = None,
) -> list[AgentInfo]:
    """The agents that match every filter given (none given: all of them)."""
    return [
        agent
        for agent in agents
        if (tag is None or tag in agent.tags)
        and (capability is None or capability in agent.capabilities)
        and (skill is None or skill in agent.skills)
    ]


REMOTE_CAPABILITY = "a2a"


def card_entry(card: Mapping[str, Any], url: str, name: str | None = None) -> dict[str, Any]:
    """What the registry keeps of a remote agent's card (its JSON form)."""
    skills = {
        str(item.get("id") or item.get("name")): {
            "name": str(item.get("id") or item.get("name")),
            "description": str(item.get("description") or ""),
            "tags": [str(tag) for tag in item.get("tags") or ()],
        }
        for item in card.get("skills") or ()
    }
    return {
        "name": name or str(card.get("name") or ""),
        "url": url.rstrip("/"),
        "description": str(card.get("description") or ""),
        "skills": skills,
    }


def remote_agents(raw: Mapping[str, str]) -> dict[str, AgentInfo]:
    """Remote A2A agents by name, from the ``remote-agents`` hash."""
    found = {}
    for name, text in sorted(raw.items()):
        try:
            entry = json.loads(text)
        except ValueError:
            continue
        skills = entry.get("skills") or {}
        tags = sorted({tag for skill in skills.values() for tag in skill.get("tags") or ()})
        found[name] = AgentInfo(
            name=name,
            url=str(entry.get("url", "")),
            skills=tuple(sorted(skills)),
            tags=tuple(tags),
            capabilities=(REMOTE_CAPABILITY,),
            metadata={
                "description": entry.get("description", ""),
                "remote": True,
                "skills": skills,
            },
        )
    return found


def all_agents(
    workers: Iterable[Mapping[str, Any]], remote: Mapping[str, str]
) -> dict[str, AgentInfo]:
    """This deployment's live agents, then remote ones (a live agent's name wins)."""
    return {**remote_agents(remote), **agents_from(workers)}


async def read_card_entry(url: str, name: str | None = None) -> dict[str, Any]:
    """The registry entry for the A2A agent whose card is at ``url`` (its base URL or
    the card's own), named by the card or by ``name``."""
    import httpx

    base = url.rstrip("/").removesuffix("/.well-known/agent-card.json")
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.get(base + "/.well-known/agent-card.json")
    if response.status_code != 200:
        raise ConfigurationError(
            f"no agent card at {base}/.well-known/agent-card.json (HTTP {response.status_code})"
        )
    entry = card_entry(response.json(), base, name)
    if not AGENT_NAME.match(entry["name"]):
        raise ConfigurationError(f"agent name {entry['name']!r} must match {AGENT_NAME.pattern}")
    return entry
