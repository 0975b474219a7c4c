#!/usr/bin/env python3
"""`fixed` with a planted bug, for gpuclaim to catch: when a VM is stopped
(deallocated) while Kubernetes is configured, the GPUs it releases go to
Kubernetes instead of back to the free pool -- the defect of release notes
2102 to 2110, written as an allocator. `no-steal-after-dealloc` catches it.
"""

from fixed import Fixed, serve


class Buggy(Fixed):
    def apply(self, phase, op, vm, size, life, kube, option):
        if phase == "end" and op == "stop-vm" and life == "stopping" and kube == "configured":
            self.kube |= self.held[vm]  # the bug: Kubernetes gets the GPUs
            self.held[vm] = 0
            return "ok", kube
        return super().apply(phase, op, vm, size, life, kube, option)


if __name__ == "__main__":
    serve(Buggy(), "py-buggy")
