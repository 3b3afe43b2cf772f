"""Summarise a py-spy profile of chatd by role: reading sends, persisting, fan-out, writing, SQLite, the loop.

Record while a bench runs against a chatd whose pid you know, then summarise::

    py-spy record -p PID -d 15 -r 250 --gil -f raw -o prof.txt
    python bench/profile_summary.py prof.txt

``--gil`` keeps only samples where a thread held the GIL, i.e. Python work (native code called from Python while
holding the GIL is charged to the innermost Python frame). Work granian does in its own threads without the GIL
does not show here; compare with the per-thread CPU times in ``/proc/PID/task/*/stat``.
"""

from __future__ import annotations

import collections
import sys

# First match wins; each key is looked for in every frame of a stack.
ROLES: list[tuple[str, tuple[str, ...]]] = [
    ("fan-out: Hub.deliver / Conn.send / Outbox.push (per delivery)", ("Hub.deliver",)),
    ("write: writer task, pack + granian send (per packed WS message)", ("WsSession._write_loop",)),
    ("persist: Worker._process on the loop (encode, completions, publish)", ("Worker._process", "Worker._run")),
    ("read: WS receive, decode, validate, submit (per message)", ("WsSession._read_loop",)),
    ("sqlite threads (store connections, spill file)", ("ConnectionThread._serve", "_connection_worker_thread")),
    ("metrics scrape / other HTTP", ("metrics (chatd", "readyz")),
]


def summarise(path: str, top: int = 18) -> str:
    total = 0
    roles: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip().rpartition(" ")
            n = int(count)
            total += n
            frames = stack.split(";")
            leaves[frames[-1]] += n
            for label, keys in ROLES:
                if any(k in fr for fr in frames for k in keys):
                    roles[label] += n
                    break
            else:
                if len(frames) <= 2 or frames[-1].startswith("thread"):
                    roles["native / no Python frame (granian threads, loop idle poll)"] += n
                elif "Runner.run" in frames[-1] or "run (uvloop" in frames[-1]:
                    roles["event loop itself (uvloop C, callbacks)"] += n
                else:
                    roles["other Python"] += n
    out = [f"samples: {total}"]
    out += [f"{100 * v / total:5.1f}%  {k}" for k, v in roles.most_common()]
    out.append("-- top self frames")
    out += [f"{100 * v / total:5.1f}%  {k[:120]}" for k, v in leaves.most_common(top)]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.stdout.write(summarise(sys.argv[1]))
