package hook

import "syscall"

// parentDeath kills the hook when Switchyard dies: after a crash, the
// restarted daemon runs the hook again (Reconcile re-emits it), and the
// old run should not go on beside the new one.
func parentDeath(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
