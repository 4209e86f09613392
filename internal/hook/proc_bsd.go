//go:build unix && !linux

package hook

import "syscall"

// parentDeath does nothing where the kernel cannot tie a child's life to
// its parent's: a hook running when Switchyard crashed runs to its end
// beside the new run (hooks must be idempotent).
func parentDeath(*syscall.SysProcAttr) {}
