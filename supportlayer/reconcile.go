package supportlayer

import (
	"fmt"
	"time"

	"github.com/tidewatch/tidewatch/supportlayer/deploy"
)

// Job states as the daemon reports them.
const (
	StateSubmitted  = "SUBMITTED"  // stored, not deployed yet
	StateDeploying  = "DEPLOYING"  // a deployment started, its job master has not reported RUNNING
	StateRunning    = "RUNNING"    // the job master reports RUNNING
	StateRestarting = "RESTARTING" // the deployment ended; a new one starts at NextRestartAt
	StateStopping   = "STOPPING"   // stop with savepoint asked of the job master
	StateCancelling = "CANCELLING" // cancel asked of the job master
	StateStopped    = "STOPPED"    // terminal: stopped on request
	StateCanceled   = "CANCELED"   // terminal: cancelled on request
	StateFinished   = "FINISHED"   // terminal: a bounded job reached the end of its input
	StateFailed     = "FAILED"     // terminal: the restart policy gave up
)

// Desired states a user can ask for.
const (
	DesiredRunning  = "RUNNING"
	DesiredStopped  = "STOPPED"
	DesiredCanceled = "CANCELED"
)

// Why a deployment was made.
const (
	ReasonSubmit  = "submit"  // the first deployment of a job
	ReasonRestart = "restart" // the watcher brought a dead job back; counts against the policy
	ReasonManual  = "manual"  // a user asked for a restart
)

var terminalStates = []string{StateStopped, StateCanceled, StateFinished, StateFailed}

func isTerminal(state string) bool {
	for _, s := range terminalStates {
		if s == state {
			return true
		}
	}
	return false
}

// observation is what the watcher saw of one job in one cycle.
type observation struct {
	Job        Job
	Deployment *Deployment // the active deployment, nil if none
	Status     deploy.Status
	StatusErr  error  // the deployer could not tell; nothing is decided on ignorance
	Master     string // job state reported by the job master, "" if it did not answer
	MasterErr  error
	// RestartsInWindow counts automatic restarts within the policy window.
	RestartsInWindow int
}

// deployPoll is how often a deployment that has not reported RUNNING yet is observed.
const deployPoll = 100 * time.Millisecond

type timeouts struct {
	Start time.Duration
	Stop  time.Duration
	Probe time.Duration
}

// action is one step the applier performs, in order.
type action interface{ String() string }

type (
	// actDeploy starts a new deployment restoring from Restore.
	actDeploy struct {
		Reason  string
		Restore string
	}
	// actKill kills the active deployment.
	actKill struct{ Why string }
	// actStop asks the job master for stop-with-savepoint.
	actStop struct{}
	// actCancel asks the job master to cancel.
	actCancel struct{}
	// actEndDeployment marks the active deployment ended.
	actEndDeployment struct {
		FinalState, Diagnostics, Savepoint string
	}
	// actMarkDeploymentRunning records that the deployment's job reached RUNNING.
	actMarkDeploymentRunning struct{}
	// actSetState moves the job to State.
	actSetState struct {
		State   string
		Message string
	}
	// actScheduleRestart sets the job RESTARTING until At.
	actScheduleRestart struct {
		At     time.Time
		Reason string
	}
	// actEvent records an event.
	actEvent struct{ Level, Type, Message string }
	// actWake asks for another look at the job at At.
	actWake struct{ At time.Time }
)

func (a actDeploy) String() string { return fmt.Sprintf("deploy(%s, restore=%s)", a.Reason, a.Restore) }
func (a actKill) String() string   { return "kill(" + a.Why + ")" }
func (actStop) String() string     { return "stop" }
func (actCancel) String() string   { return "cancel" }
func (a actEndDeployment) String() string {
	return fmt.Sprintf("end-deployment(%s)", a.FinalState)
}
func (actMarkDeploymentRunning) String() string { return "deployment-running" }
func (a actSetState) String() string            { return "state(" + a.State + ")" }
func (a actScheduleRestart) String() string {
	return "restart-at(" + a.At.UTC().Format(time.RFC3339Nano) + ")"
}
func (a actEvent) String() string { return "event(" + a.Level + " " + a.Type + ")" }
func (a actWake) String() string  { return "wake(" + a.At.UTC().Format(time.RFC3339Nano) + ")" }

// Delay returns how long to wait before the next automatic restart, given the
// number of automatic restarts already made within the window, and false when
// the policy allows no more.
func (p RestartPolicy) Next(restartsInWindow int) (time.Duration, bool) {
	if restartsInWindow >= p.MaxRestarts {
		return 0, false
	}
	d := p.Delay
	if p.Strategy == "exponential" {
		for i := 0; i < restartsInWindow && d < p.MaxDelay; i++ {
			d *= 2
		}
	}
	if d > p.MaxDelay {
		d = p.MaxDelay
	}
	return d, true
}

// decide reconciles what is wanted of a job with what was observed, as a pure
// function of its inputs: the applier carries the actions out.
func decide(o observation, policy RestartPolicy, to timeouts, now time.Time) []action {
	j, d := o.Job, o.Deployment
	if d != nil && o.StatusErr != nil {
		return nil
	}
	switch j.DesiredState {
	case DesiredStopped, DesiredCanceled:
		return decideEnd(o, to, now)
	}

	if d == nil {
		switch j.State {
		case StateSubmitted:
			return []action{actDeploy{Reason: ReasonSubmit, Restore: "latest"}, actSetState{State: StateDeploying}, actWake{At: now.Add(deployPoll)}}
		case StateRestarting:
			if j.NextRestartAt != nil && now.Before(*j.NextRestartAt) {
				return []action{actWake{At: *j.NextRestartAt}}
			}
			reason := j.RestartReason
			if reason == "" {
				reason = ReasonRestart
			}
			return []action{actDeploy{Reason: reason, Restore: "latest"}, actSetState{State: StateDeploying}, actWake{At: now.Add(deployPoll)}}
		case StateDeploying, StateRunning:
			// The deployment record is gone though the job should run: bring it back.
			return restartOrFail(o, policy, now, "no active deployment")
		}
		return nil
	}

	if o.Status.Alive {
		if j.RestartRequested {
			return []action{
				actKill{Why: "restart requested"},
				actEndDeployment{Diagnostics: "killed for a restart requested by a user"},
				actScheduleRestart{At: now, Reason: ReasonManual},
				actWake{At: now},
			}
		}
		switch o.Master {
		case "RUNNING":
			if j.State != StateRunning {
				return []action{
					actMarkDeploymentRunning{},
					actSetState{State: StateRunning},
					actEvent{Level: "INFO", Type: "JOB_RUNNING", Message: fmt.Sprintf("deployment %d is running", d.Attempt)},
				}
			}
			return nil
		case "", "INITIALIZING", "CREATED", "RESTARTING", "RECONCILING":
			if j.State != StateDeploying {
				return nil
			}
			if now.Sub(d.StartedAt) > to.Start {
				msg := fmt.Sprintf("deployment %d did not report RUNNING within %s", d.Attempt, to.Start)
				acts := []action{actKill{Why: msg}, actEndDeployment{Diagnostics: msg}}
				return append(acts, restartOrFail(o, policy, now, msg)...)
			}
			// A starting job master is looked at more often than once a cycle,
			// so RUNNING is seen soon after it is reached.
			return []action{actWake{At: now.Add(deployPoll)}}
		}
		// FINISHED, FAILED, CANCELED, FAILING, CANCELLING: the job master is about
		// to exit; its result is read once the process is gone.
		return nil
	}

	// The deployment's process or application is gone.
	end := actEndDeployment{FinalState: o.Status.FinalState, Diagnostics: o.Status.Diagnostics, Savepoint: o.Status.Savepoint}
	if o.Status.FinalState == "FINISHED" && o.Status.Savepoint == "" {
		return []action{end,
			actSetState{State: StateFinished, Message: "the job reached the end of its input"},
			actEvent{Level: "INFO", Type: "JOB_FINISHED", Message: fmt.Sprintf("deployment %d finished", d.Attempt)},
		}
	}
	why := fmt.Sprintf("deployment %d ended", d.Attempt)
	if o.Status.FinalState != "" {
		why += " " + o.Status.FinalState
	}
	if o.Status.Diagnostics != "" {
		why += ": " + o.Status.Diagnostics
	}
	return append([]action{end}, restartOrFail(o, policy, now, why)...)
}

func restartOrFail(o observation, policy RestartPolicy, now time.Time, why string) []action {
	delay, ok := policy.Next(o.RestartsInWindow)
	if !ok {
		msg := fmt.Sprintf("%s; restart limit reached (%d restarts within %s)", why, o.RestartsInWindow, policy.Window)
		return []action{
			actSetState{State: StateFailed, Message: msg},
			actEvent{Level: "ERROR", Type: "JOB_FAILED", Message: msg},
		}
	}
	at := now.Add(delay)
	return []action{
		actScheduleRestart{At: at, Reason: ReasonRestart},
		actEvent{Level: "WARN", Type: "JOB_RESTARTING", Message: fmt.Sprintf("%s; restarting from the latest checkpoint in %s (restart %d of %d within %s)",
			why, delay, o.RestartsInWindow+1, policy.MaxRestarts, policy.Window)},
		actWake{At: at},
	}
}

// decideEnd handles jobs a user asked to stop or cancel.
func decideEnd(o observation, to timeouts, now time.Time) []action {
	j, d := o.Job, o.Deployment
	final, verb := StateStopped, "stopped"
	asking, ask := StateStopping, action(actStop{})
	if j.DesiredState == DesiredCanceled {
		final, verb = StateCanceled, "cancelled"
		asking, ask = StateCancelling, actCancel{}
	}
	if d == nil {
		if isTerminal(j.State) {
			return nil
		}
		return []action{actSetState{State: final}, actEvent{Level: "INFO", Type: "JOB_" + final, Message: "the job was " + verb + " before it ran"}}
	}
	if o.Status.Alive {
		if j.StopRequestedAt == nil || j.State != asking {
			return []action{ask, actSetState{State: asking}, actWake{At: now.Add(to.Stop)}}
		}
		if now.Sub(*j.StopRequestedAt) > to.Stop {
			msg := fmt.Sprintf("the job master did not end within %s of the request; killed", to.Stop)
			return []action{actKill{Why: msg}, actEvent{Level: "WARN", Type: "JOB_KILLED", Message: msg}}
		}
		return nil
	}
	msg := "the job was " + verb
	if o.Status.Savepoint != "" {
		msg += " with savepoint " + o.Status.Savepoint
	} else if j.DesiredState == DesiredStopped {
		msg += " without a final savepoint"
	}
	return []action{
		actEndDeployment{FinalState: o.Status.FinalState, Diagnostics: o.Status.Diagnostics, Savepoint: o.Status.Savepoint},
		actSetState{State: final, Message: msg},
		actEvent{Level: "INFO", Type: "JOB_" + final, Message: msg},
	}
}
