package jobrunner

import (
	"slices"
	"testing"
)

func TestLayoutOf(t *testing.T) {
	for _, tt := range []struct {
		name                string
		parallelism, vcores int
		window, source      string
		containers, slots   int
		subtasksOfLast      [2]int
	}{
		{name: "fits the AM", parallelism: 2, vcores: 2, window: "tumbling", source: "datagen", containers: 1, slots: 2, subtasksOfLast: [2]int{0, 2}},
		{name: "two containers", parallelism: 4, vcores: 2, window: "tumbling", source: "datagen", containers: 2, slots: 2, subtasksOfLast: [2]int{2, 4}},
		{name: "uneven", parallelism: 5, vcores: 2, window: "tumbling", source: "datagen", containers: 3, slots: 2, subtasksOfLast: [2]int{4, 5}},
		{name: "no keyed stage", parallelism: 5, vcores: 1, source: "datagen", containers: 1, slots: 5, subtasksOfLast: [2]int{0, 5}},
		{name: "http source", parallelism: 4, vcores: 1, window: "tumbling", source: "http", containers: 1, slots: 4, subtasksOfLast: [2]int{0, 4}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			spec := defaultSpec()
			spec.Parallelism, spec.Resources.VCores = tt.parallelism, tt.vcores
			spec.Window.Type, spec.Source.Type = tt.window, tt.source
			l := LayoutOf(&spec)
			if l.Containers != tt.containers || l.Slots != tt.slots {
				t.Fatalf("layout %+v, want %d containers of %d slots", l, tt.containers, tt.slots)
			}
			if s, e := l.Subtasks(l.Containers - 1); [2]int{s, e} != tt.subtasksOfLast {
				t.Errorf("last container runs subtasks [%d, %d), want %v", s, e, tt.subtasksOfLast)
			}
			// Every keyed subtask is local in exactly one container.
			seen := make([]int, l.Parallelism)
			for c := range l.Containers {
				local := l.Local(c)
				if l.Containers == 1 {
					if local != nil {
						t.Errorf("one container, Local %v", local)
					}
					continue
				}
				for j, ok := range local {
					if ok {
						seen[j]++
					}
				}
			}
			if l.Containers > 1 && slices.ContainsFunc(seen, func(n int) bool { return n != 1 }) {
				t.Errorf("subtasks local in %v containers", seen)
			}
		})
	}
	l := Layout{Containers: 2, Slots: 2, Parallelism: 4}
	if got := l.CheckpointDir("hdfs://nn:8020/ck/job/", 1); got != "hdfs://nn:8020/ck/job/container-1-subtasks-2-3-of-4" {
		t.Errorf("CheckpointDir on HDFS = %q", got)
	}
	if got := l.CheckpointDir("/var/ck/job", 0); got != "/var/ck/job/container-0-subtasks-0-1-of-4" {
		t.Errorf("CheckpointDir = %q", got)
	}
}
