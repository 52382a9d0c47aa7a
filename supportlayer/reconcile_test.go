package supportlayer

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tidewatch/tidewatch/supportlayer/deploy"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func testPolicy() RestartPolicy {
	return RestartPolicy{Strategy: "exponential", Delay: time.Second, MaxDelay: 8 * time.Second, MaxRestarts: 3, Window: 10 * time.Minute}
}

var testTimeouts = timeouts{Start: time.Minute, Stop: 30 * time.Second, Probe: time.Second}

func ptr[T any](v T) *T { return &v }

// kinds renders actions as their kinds, for compact expectations.
func kinds(acts []action) []string {
	out := make([]string, 0, len(acts))
	for _, a := range acts {
		s := a.String()
		if i := strings.IndexByte(s, '('); i >= 0 {
			s = s[:i]
		}
		out = append(out, s)
	}
	return out
}

func TestDecide(t *testing.T) {
	running := &Deployment{ID: 7, Attempt: 2, StartedAt: t0.Add(-time.Hour), Active: true, Endpoint: "http://x"}
	fresh := &Deployment{ID: 8, Attempt: 1, StartedAt: t0.Add(-10 * time.Second), Active: true}
	stale := &Deployment{ID: 9, Attempt: 1, StartedAt: t0.Add(-2 * time.Minute), Active: true}

	tests := []struct {
		name string
		obs  observation
		want []string
		// check inspects the actions further.
		check func(t *testing.T, acts []action)
	}{
		{
			name: "submitted job is deployed from the latest checkpoint",
			obs:  observation{Job: Job{State: StateSubmitted, DesiredState: DesiredRunning}},
			want: []string{"deploy", "state", "wake"},
			check: func(t *testing.T, acts []action) {
				if d := acts[0].(actDeploy); d.Reason != ReasonSubmit || d.Restore != "latest" {
					t.Errorf("deploy = %+v", d)
				}
			},
		},
		{
			name: "restarting job waits for its time",
			obs:  observation{Job: Job{State: StateRestarting, DesiredState: DesiredRunning, NextRestartAt: ptr(t0.Add(time.Second))}},
			want: []string{"wake"},
		},
		{
			name: "restarting job whose time has come is deployed",
			obs:  observation{Job: Job{State: StateRestarting, DesiredState: DesiredRunning, NextRestartAt: ptr(t0), RestartReason: ReasonRestart}},
			want: []string{"deploy", "state", "wake"},
			check: func(t *testing.T, acts []action) {
				if d := acts[0].(actDeploy); d.Reason != ReasonRestart {
					t.Errorf("reason = %s", d.Reason)
				}
			},
		},
		{
			name: "manual restart keeps its reason",
			obs:  observation{Job: Job{State: StateRestarting, DesiredState: DesiredRunning, NextRestartAt: ptr(t0), RestartReason: ReasonManual}},
			want: []string{"deploy", "state", "wake"},
			check: func(t *testing.T, acts []action) {
				if d := acts[0].(actDeploy); d.Reason != ReasonManual {
					t.Errorf("reason = %s", d.Reason)
				}
			},
		},
		{
			name: "job master reports RUNNING: job becomes RUNNING",
			obs:  observation{Job: Job{State: StateDeploying, DesiredState: DesiredRunning}, Deployment: fresh, Status: deploy.Status{Alive: true}, Master: "RUNNING"},
			want: []string{"deployment-running", "state", "event"},
		},
		{
			name: "running and healthy: nothing to do",
			obs:  observation{Job: Job{State: StateRunning, DesiredState: DesiredRunning}, Deployment: running, Status: deploy.Status{Alive: true}, Master: "RUNNING"},
			want: []string{},
		},
		{
			name: "deploying within the start timeout: look again soon",
			obs:  observation{Job: Job{State: StateDeploying, DesiredState: DesiredRunning}, Deployment: fresh, Status: deploy.Status{Alive: true}},
			want: []string{"wake"},
		},
		{
			name: "deploying past the start timeout: kill and restart",
			obs:  observation{Job: Job{State: StateDeploying, DesiredState: DesiredRunning}, Deployment: stale, Status: deploy.Status{Alive: true}, Master: "INITIALIZING"},
			want: []string{"kill", "end-deployment", "restart-at", "event", "wake"},
		},
		{
			name: "process died: restart after the first delay",
			obs:  observation{Job: Job{State: StateRunning, DesiredState: DesiredRunning}, Deployment: running, Status: deploy.Status{Diagnostics: "killed by signal killed"}},
			want: []string{"end-deployment", "restart-at", "event", "wake"},
			check: func(t *testing.T, acts []action) {
				if at := acts[1].(actScheduleRestart).At; !at.Equal(t0.Add(time.Second)) {
					t.Errorf("restart at %s, want %s", at, t0.Add(time.Second))
				}
				if ev := acts[2].(actEvent); ev.Level != "WARN" || !strings.Contains(ev.Message, "killed by signal") {
					t.Errorf("event = %+v", ev)
				}
			},
		},
		{
			name: "exponential backoff doubles per restart in the window",
			obs:  observation{Job: Job{State: StateRunning, DesiredState: DesiredRunning}, Deployment: running, RestartsInWindow: 2},
			want: []string{"end-deployment", "restart-at", "event", "wake"},
			check: func(t *testing.T, acts []action) {
				if at := acts[1].(actScheduleRestart).At; !at.Equal(t0.Add(4 * time.Second)) {
					t.Errorf("restart at %s, want +4s", at)
				}
			},
		},
		{
			name: "restart limit reached: FAILED",
			obs:  observation{Job: Job{State: StateRunning, DesiredState: DesiredRunning}, Deployment: running, RestartsInWindow: 3},
			want: []string{"end-deployment", "state", "event"},
			check: func(t *testing.T, acts []action) {
				if s := acts[1].(actSetState); s.State != StateFailed || !strings.Contains(s.Message, "restart limit") {
					t.Errorf("state = %+v", s)
				}
			},
		},
		{
			name: "bounded job finished",
			obs:  observation{Job: Job{State: StateRunning, DesiredState: DesiredRunning}, Deployment: running, Status: deploy.Status{FinalState: "FINISHED"}},
			want: []string{"end-deployment", "state", "event"},
			check: func(t *testing.T, acts []action) {
				if s := acts[1].(actSetState); s.State != StateFinished {
					t.Errorf("state = %+v", s)
				}
			},
		},
		{
			name: "job master ended FAILED: restart",
			obs:  observation{Job: Job{State: StateRunning, DesiredState: DesiredRunning}, Deployment: running, Status: deploy.Status{FinalState: "FAILED", Diagnostics: "boom"}},
			want: []string{"end-deployment", "restart-at", "event", "wake"},
		},
		{
			name: "observation failed: decide nothing",
			obs:  observation{Job: Job{State: StateRunning, DesiredState: DesiredRunning}, Deployment: running, StatusErr: errors.New("rm unreachable")},
			want: []string{},
		},
		{
			name: "user restart of a running job kills it and redeploys at once",
			obs:  observation{Job: Job{State: StateRunning, DesiredState: DesiredRunning, RestartRequested: true}, Deployment: running, Status: deploy.Status{Alive: true}, Master: "RUNNING"},
			want: []string{"kill", "end-deployment", "restart-at", "wake"},
			check: func(t *testing.T, acts []action) {
				if r := acts[2].(actScheduleRestart); r.Reason != ReasonManual || !r.At.Equal(t0) {
					t.Errorf("restart = %+v", r)
				}
			},
		},
		{
			name: "stop asks the job master for a savepoint",
			obs:  observation{Job: Job{State: StateRunning, DesiredState: DesiredStopped}, Deployment: running, Status: deploy.Status{Alive: true}, Master: "RUNNING"},
			want: []string{"stop", "state", "wake"},
		},
		{
			name: "stopping within the timeout: wait",
			obs:  observation{Job: Job{State: StateStopping, DesiredState: DesiredStopped, StopRequestedAt: ptr(t0.Add(-time.Second))}, Deployment: running, Status: deploy.Status{Alive: true}},
			want: []string{},
		},
		{
			name: "stopping past the timeout: kill",
			obs:  observation{Job: Job{State: StateStopping, DesiredState: DesiredStopped, StopRequestedAt: ptr(t0.Add(-time.Minute))}, Deployment: running, Status: deploy.Status{Alive: true}},
			want: []string{"kill", "event"},
		},
		{
			name: "stopped process: STOPPED with its savepoint",
			obs:  observation{Job: Job{State: StateStopping, DesiredState: DesiredStopped, StopRequestedAt: ptr(t0)}, Deployment: running, Status: deploy.Status{FinalState: "FINISHED", Savepoint: "/sp/1"}},
			want: []string{"end-deployment", "state", "event"},
			check: func(t *testing.T, acts []action) {
				if s := acts[1].(actSetState); s.State != StateStopped || !strings.Contains(s.Message, "/sp/1") {
					t.Errorf("state = %+v", s)
				}
			},
		},
		{
			name: "cancel asks the job master to cancel",
			obs:  observation{Job: Job{State: StateRunning, DesiredState: DesiredCanceled}, Deployment: running, Status: deploy.Status{Alive: true}},
			want: []string{"cancel", "state", "wake"},
		},
		{
			name: "cancelled process: CANCELED",
			obs:  observation{Job: Job{State: StateCancelling, DesiredState: DesiredCanceled, StopRequestedAt: ptr(t0)}, Deployment: running, Status: deploy.Status{FinalState: "CANCELED"}},
			want: []string{"end-deployment", "state", "event"},
		},
		{
			name: "stop before the first deployment",
			obs:  observation{Job: Job{State: StateSubmitted, DesiredState: DesiredStopped}},
			want: []string{"state", "event"},
		},
		{
			name: "terminal job: nothing",
			obs:  observation{Job: Job{State: StateFailed, DesiredState: DesiredRunning}},
			want: []string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			acts := decide(tt.obs, testPolicy(), testTimeouts, t0)
			if got := kinds(acts); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("actions = %v, want %v", got, tt.want)
			}
			if tt.check != nil {
				tt.check(t, acts)
			}
		})
	}
}

func TestRestartPolicyNext(t *testing.T) {
	fixed := RestartPolicy{Strategy: "fixed", Delay: 2 * time.Second, MaxDelay: time.Minute, MaxRestarts: 2, Window: time.Minute}
	exp := RestartPolicy{Strategy: "exponential", Delay: time.Second, MaxDelay: 5 * time.Second, MaxRestarts: 10, Window: time.Minute}
	tests := []struct {
		p      RestartPolicy
		n      int
		want   time.Duration
		wantOK bool
	}{
		{fixed, 0, 2 * time.Second, true},
		{fixed, 1, 2 * time.Second, true},
		{fixed, 2, 0, false},
		{exp, 0, time.Second, true},
		{exp, 1, 2 * time.Second, true},
		{exp, 2, 4 * time.Second, true},
		{exp, 3, 5 * time.Second, true}, // capped
		{exp, 9, 5 * time.Second, true},
		{exp, 10, 0, false},
	}
	for _, tt := range tests {
		got, ok := tt.p.Next(tt.n)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("%s.Next(%d) = %s, %v; want %s, %v", tt.p.Strategy, tt.n, got, ok, tt.want, tt.wantOK)
		}
	}
}
