package supportlayer

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkWatchCycle100Jobs measures one full watch cycle over 100 running
// jobs: list, observe each deployment, probe each job master over HTTP,
// decide. The fake job master runs in this process, so the CPU figure
// includes its side of every probe as well.
func BenchmarkWatchCycle100Jobs(b *testing.B) {
	f := newFakeCluster(&testing.T{})
	defer f.srv.Close()
	o := DefaultOptions()
	o.Listen = "127.0.0.1:0"
	o.DataDir = b.TempDir()
	o.Runtime.Binary = "/bin/true"
	o.Watch.Interval = time.Hour // the benchmark drives the cycles
	d, err := newDaemon(o, testLogger(), f.factory)
	if err != nil {
		b.Fatal(err)
	}
	if err := d.Start(); err != nil {
		b.Fatal(err)
	}
	defer d.Stop(context.Background())
	td := &testDaemon{Daemon: d, t: &testing.T{}, base: "http://" + d.Addr()}
	ids := make([]string, 100)
	for i := range ids {
		code, body := td.call("POST", "/api/v1/jobs", strings.Replace(goodSpec, "name: clicks", fmt.Sprintf("name: clicks-%d", i), 1))
		if code != 201 {
			b.Fatalf("submit: %d %s", code, body)
		}
		ids[i] = string(body[strings.Index(string(body), `"id": "`)+7:][:32])
	}
	ctx := context.Background()
	for deadline := time.Now().Add(30 * time.Second); ; {
		d.watcher.cycle(ctx)
		jobs, _ := d.store.Jobs(ctx, []string{StateRunning})
		if len(jobs) == 100 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of 100 jobs running", len(jobs))
		}
	}

	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		d.watcher.cycle(ctx)
	}
	cpu := cpuTime() - cpu0
	b.StopTimer()
	perCycle := cpu / time.Duration(b.N)
	b.ReportMetric(float64(perCycle.Microseconds())/1000, "cpu-ms/cycle")
	// At the default 5 s interval, the share of one core the watcher uses.
	b.ReportMetric(100*perCycle.Seconds()/DefaultOptions().Watch.Interval.Seconds(), "%core@5s")
}
