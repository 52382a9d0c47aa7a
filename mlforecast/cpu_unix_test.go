//go:build unix

package mlforecast

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time used by this process so far, so that
// benchmarks on a shared machine can report work done as well as wall time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
