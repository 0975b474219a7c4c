#!/usr/bin/env python3
"""`fixed` as an allocator in another process: MODEL.md's operations table,
spoken over gpuclaim's allocator line protocol, version 1
(docs/allocator-protocol.md). Standard library only.

    python3 fixed.py            # fixed: no internal event
    python3 fixed.py --legacy   # legacy: Kubernetes takes every free GPU
                                # whenever it is configured (kube-takeover)

The allocator keeps nothing beyond the sets, so the state it exports is
empty and `import` restores the sets alone.
"""

import sys


class Fixed:
    def __init__(self, legacy=False):
        self.legacy = legacy
        self.reset(0, [])

    def reset(self, gpus, sizes):
        self.free = (1 << gpus) - 1
        self.kube = 0
        self.held = [0] * len(sizes)

    def claim(self, vm, size):
        """The `size` lowest-numbered free GPUs, or None when too few."""
        taken, rest = 0, self.free
        for _ in range(size):
            if rest == 0:
                return None
            bit = rest & -rest
            taken |= bit
            rest &= ~bit
        self.free &= ~taken
        self.held[vm] |= taken
        return "ok"

    def release(self, vm):
        self.free |= self.held[vm]
        self.held[vm] = 0

    def apply(self, phase, op, vm, size, life, kube, option):
        """One model action; returns (outcome, Kubernetes' state after)."""
        if phase == "begin" and op == "create-vm":
            return ("ok" if self.claim(vm, size) else "no-gpu"), kube
        if phase == "begin" and op == "start-vm" and life == "stopped":
            return ("ok" if self.claim(vm, size) else "no-gpu"), kube
        if phase == "end" and op == "stop-vm" and life == "stopping":
            self.release(vm)
        elif phase == "end" and op == "remove-vm":
            self.release(vm)
        elif phase == "begin" and op == "configure-kube":
            return "ok", "configuring"
        elif phase == "end" and op == "configure-kube":
            self.kube |= self.free
            self.free = 0
            return "ok", "configured"
        elif phase == "event" and op == "kube-takeover":
            self.kube |= self.free
            self.free = 0
        return "ok", kube

    def state_reply(self, outcome, kube):
        takeover = int(self.legacy and kube == "configured" and self.free != 0)
        held = ",".join(str(h) for h in self.held) or "-"
        return (f"ok outcome={outcome} free={self.free} kube={self.kube} "
                f"held={held} takeover={takeover} state=")


def fields(words):
    """`key=value` words as a dict."""
    return dict(w.split("=", 1) for w in words)


def serve(allocator, name, inp=sys.stdin, out=sys.stdout):
    for line in inp:
        words = line.split()
        if not words:
            continue
        cmd = words[0]
        if cmd == "hello":
            if words[1:3] != ["gpuclaim-allocator", "1"]:
                reply = "error this allocator speaks protocol version 1"
            else:
                reply = f"hello gpuclaim-allocator 1 name={name} features=export,symmetric"
        elif cmd == "reset":
            gpus = int(words[1])
            sizes = [] if words[2] == "-" else [int(s) for s in words[2].split(",")]
            allocator.reset(gpus, sizes)
            reply = allocator.state_reply("ok", "unconfigured")
        elif cmd == "apply":
            phase, op = words[1], words[2]
            f = fields(words[3:])
            vm = -1 if f["vm"] == "-" else int(f["vm"])
            size = 0 if f["size"] == "-" else int(f["size"])
            outcome, kube = allocator.apply(phase, op, vm, size, f["life"], f["kube"], f["option"])
            reply = allocator.state_reply(outcome, kube)
        elif cmd == "import":
            head = line.split(" state=", 1)[0].split()
            f = fields(head[1:])
            allocator.free = int(f["free"])
            allocator.kube = int(f["kube"])
            allocator.held = [] if f["held"] == "-" else [int(h) for h in f["held"].split(",")]
            reply = "ok"
        else:
            reply = f"error unknown request {cmd}"
        out.write(reply + "\n")
        out.flush()


if __name__ == "__main__":
    legacy = "--legacy" in sys.argv[1:]
    serve(Fixed(legacy), "py-legacy" if legacy else "py-fixed")
