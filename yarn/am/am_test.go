package am

import (
	"testing"

	"github.com/tidewatch/tidewatch/yarn/amrm"
)

func TestResultRoundTrip(t *testing.T) {
	r := Result{State: "FINISHED", Savepoint: "hdfs://nn:8020/ck/savepoints/savepoint-abc-7"}
	d := r.Diagnostics()
	got, ok := ParseResult("something the RM added\n" + d)
	if !ok || got != r {
		t.Fatalf("ParseResult(%q) = %+v, %v", d, got, ok)
	}
	if _, ok := ParseResult("AM container exited with exitCode: 1"); ok {
		t.Error("found a result in diagnostics without one")
	}
	if _, ok := ParseResult(ResultPrefix + "{not json"); ok {
		t.Error("accepted a broken result line")
	}
	failed := Result{State: "FAILED", Error: "sink: disk full"}.Diagnostics()
	if got, _ := ParseResult(failed); got.Error != "sink: disk full" {
		t.Errorf("error lost: %q", failed)
	}
}

func TestFinalStatus(t *testing.T) {
	for state, want := range map[string]amrm.FinalStatus{"FINISHED": amrm.Succeeded, "CANCELED": amrm.Killed, "FAILED": amrm.Failed, "": amrm.Failed} {
		if got := FinalStatus(state); got != want {
			t.Errorf("FinalStatus(%q) = %v, want %v", state, got, want)
		}
	}
}

func TestTrackingURL(t *testing.T) {
	got, err := TrackingURL("http://[::]:40123", "node7.example.com")
	if err != nil || got != "http://node7.example.com:40123" {
		t.Errorf("TrackingURL = %q, %v", got, err)
	}
	if _, err := TrackingURL("http://no-port", "h"); err == nil {
		t.Error("no error for a URL without a port")
	}
	env := map[string]string{EnvContainerID: "container_1_0001_01_000001", EnvTokenFile: "/x/container_tokens", EnvNMHost: "node3"}
	getenv := func(k string) string { return env[k] }
	if !InContainer(getenv) || AdvertiseHost(getenv) != "node3" {
		t.Error("container environment not recognised")
	}
	if InContainer(func(string) string { return "" }) {
		t.Error("a plain process taken for a container")
	}
}

func TestContainerAttempt(t *testing.T) {
	for id, want := range map[string]int{
		"container_1795472519589_0001_02_000001":     2,
		"container_e17_1410901177871_0001_01_000005": 1,
		"nonsense": 0, "": 0,
	} {
		if got := ContainerAttempt(id); got != want {
			t.Errorf("ContainerAttempt(%q) = %d, want %d", id, got, want)
		}
	}
	if p, err := Port("http://0.0.0.0:40123"); err != nil || p != 40123 {
		t.Errorf("Port = %d, %v", p, err)
	}
}
