package rmtest

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Internal RMAppState values (GET /apps/{id}/state shows these).
const (
	StateNew         = "NEW"
	StateNewSaving   = "NEW_SAVING"
	StateSubmitted   = "SUBMITTED"
	StateAccepted    = "ACCEPTED"
	StateRunning     = "RUNNING"
	StateFinalSaving = "FINAL_SAVING"
	StateFinishing   = "FINISHING"
	StateFinished    = "FINISHED"
	StateFailed      = "FAILED"
	StateKilling     = "KILLING"
	StateKilled      = "KILLED"
)

// RMAppAttemptState values used by the fake.
const (
	AttemptScheduled = "SCHEDULED"
	AttemptLaunched  = "LAUNCHED"
	AttemptRunning   = "RUNNING"
	AttemptFinishing = "FINISHING"
	AttemptFinished  = "FINISHED"
	AttemptFailed    = "FAILED"
	AttemptKilled    = "KILLED"
)

// Local resource of a submission, as the fake parsed it.
type LocalResource struct {
	URL        string `json:"resource"`
	Type       string `json:"type"`
	Visibility string `json:"visibility"`
	Size       int64  `json:"size"`
	Timestamp  int64  `json:"timestamp"`
	Pattern    string `json:"pattern"`
}

type attempt struct {
	n            int
	state        string
	containerID  string
	started      int64
	finished     int64
	host         string
	rpcPort      int64
	origTracking string
	diagnostics  string
}

type app struct {
	id, seqID       string
	clusterTS       int64
	seq             int
	user            string
	name            string
	queue           string
	appType         string
	tags            []string
	priority        int64
	maxAttempts     int
	validityMS      int64
	keepContainers  bool
	memoryMB        int64
	vcores          int64
	state           string // internal RMAppState
	beforeKill      string // public state while KILLING
	killRequested   bool
	finalStatus     string
	diagnostics     string
	progress        float64
	started         int64
	launched        int64
	finished        int64
	attempts        []*attempt
	localResources  map[string]LocalResource
	environment     map[string]string
	commands        []string
	hasCredentials  bool
	rawSubmission   json.RawMessage
	unknownQueueErr bool
}

// publicState maps the internal RMAppState to YarnApplicationState.
func (a *app) publicState() string {
	switch a.state {
	case StateFinishing, StateFinalSaving:
		return StateFinished
	case StateKilling:
		return a.beforeKill
	}
	return a.state
}

func (a *app) final() bool {
	switch a.state {
	case StateFinished, StateFinishing, StateFailed, StateKilled:
		return true
	}
	return false
}

func (a *app) current() *attempt {
	if len(a.attempts) == 0 {
		return nil
	}
	return a.attempts[len(a.attempts)-1]
}

// Snapshot is what a test can read about an application.
type Snapshot struct {
	ID              string
	User            string
	Name            string
	Queue           string
	ApplicationType string
	Tags            []string
	Priority        int64
	MaxAttempts     int // after the RM's clamping
	KeepContainers  bool
	MemoryMB        int64
	VCores          int64
	State           string // YarnApplicationState
	InternalState   string // RMAppState
	FinalStatus     string
	Diagnostics     string
	Attempts        []AttemptSnapshot
	LocalResources  map[string]LocalResource
	Environment     map[string]string
	Commands        []string
	HasCredentials  bool
	// Submission is the submit body as received.
	Submission json.RawMessage
}

// AttemptSnapshot describes one attempt.
type AttemptSnapshot struct {
	ID          string
	State       string
	ContainerID string
}

func (a *app) snapshot() Snapshot {
	s := Snapshot{
		ID: a.id, User: a.user, Name: a.name, Queue: a.queue, ApplicationType: a.appType,
		Tags: append([]string(nil), a.tags...), Priority: a.priority, MaxAttempts: a.maxAttempts,
		KeepContainers: a.keepContainers, MemoryMB: a.memoryMB, VCores: a.vcores,
		State: a.publicState(), InternalState: a.state, FinalStatus: a.finalStatus, Diagnostics: a.diagnostics,
		LocalResources: a.localResources, Environment: a.environment, Commands: a.commands,
		HasCredentials: a.hasCredentials, Submission: a.rawSubmission,
	}
	for _, at := range a.attempts {
		s.Attempts = append(s.Attempts, AttemptSnapshot{ID: a.attemptID(at.n), State: at.state, ContainerID: at.containerID})
	}
	return s
}

func (a *app) attemptID(n int) string {
	return fmt.Sprintf("appattempt_%d_%04d_%06d", a.clusterTS, a.seq, n)
}

// --- test-driven transitions -------------------------------------------------

func (s *Server) withApp(id string, f func(a *app) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.apps[id]
	if a == nil {
		return fmt.Errorf("rmtest: no application %s", id)
	}
	return f(a)
}

// Advance moves an application held by Options.HoldAt one step along
// NEW → NEW_SAVING → SUBMITTED → ACCEPTED.
func (s *Server) Advance(id string) error {
	return s.withApp(id, func(a *app) error {
		switch a.state {
		case StateNew:
			a.state = StateNewSaving
		case StateNewSaving:
			a.state = StateSubmitted
		case StateSubmitted:
			s.accept(a)
		default:
			return fmt.Errorf("rmtest: %s is %s, not before ACCEPTED", id, a.state)
		}
		return nil
	})
}

// accept moves the app to ACCEPTED and schedules its first attempt (or
// fails it at once for an unknown queue, as the CapacityScheduler does).
func (s *Server) accept(a *app) {
	if a.unknownQueueErr {
		a.state = StateFailed
		a.finalStatus = "FAILED"
		a.finished = s.nowMS()
		a.diagnostics = fmt.Sprintf("Application %s submitted by user %s to unknown queue: %s", a.id, a.user, a.queue)
		return
	}
	a.state = StateAccepted
	a.diagnostics = "[" + time.UnixMilli(s.nowMS()).UTC().Format("Mon Jan 02 15:04:05 +0000 2006") + "] Scheduler has assigned a container for AM, waiting for AM container to be launched"
	s.newAttempt(a)
}

func (s *Server) newAttempt(a *app) {
	n := len(a.attempts) + 1
	a.attempts = append(a.attempts, &attempt{n: n, state: AttemptScheduled, started: s.nowMS(), host: "N/A", rpcPort: -1, origTracking: "N/A"})
}

// LaunchAttempt launches the AM container of the current attempt
// (SCHEDULED → LAUNCHED). With Options.CheckResource set, each local resource
// is checked first the way the NodeManager localizes; a failure fails the
// attempt with the checker's message as diagnostics, and LaunchAttempt
// returns that error.
func (s *Server) LaunchAttempt(id string) error {
	var locErr error
	err := s.withApp(id, func(a *app) error {
		at := a.current()
		if a.state != StateAccepted || at == nil || at.state != AttemptScheduled {
			return fmt.Errorf("rmtest: %s: no scheduled attempt (app %s)", id, a.state)
		}
		if s.opts.CheckResource != nil {
			for _, name := range sortedKeys(a.localResources) {
				lr := a.localResources[name]
				if err := s.opts.CheckResource(name, lr); err != nil {
					locErr = fmt.Errorf("rmtest: localizing %s: %w", name, err)
					s.failAttempt(a, at, err.Error())
					return nil
				}
			}
		}
		at.state = AttemptLaunched
		at.containerID = fmt.Sprintf("container_%d_%04d_%02d_%06d", a.clusterTS, a.seq, at.n, 1)
		if a.launched == 0 {
			a.launched = s.nowMS()
		}
		a.diagnostics = "AM container is launched, waiting for AM container to Register with RM"
		return nil
	})
	if err != nil {
		return err
	}
	return locErr
}

// RegisterAttempt marks the current attempt's AM as registered: attempt and
// application become RUNNING. trackingURL is the AM's original tracking URL
// ("" is stored as N/A); the application reports the proxy URL.
func (s *Server) RegisterAttempt(id, host, trackingURL string) error {
	return s.RegisterAttemptRPC(id, host, -1, trackingURL)
}

// RegisterAttemptRPC is RegisterAttempt with the AM's RPC port, which the
// application report shows as amRPCAddress (host:port); -1 means none.
func (s *Server) RegisterAttemptRPC(id, host string, rpcPort int64, trackingURL string) error {
	return s.withApp(id, func(a *app) error {
		at := a.current()
		if a.state != StateAccepted || at == nil || at.state != AttemptLaunched {
			return fmt.Errorf("rmtest: %s: current attempt is not LAUNCHED", id)
		}
		at.state = AttemptRunning
		at.host = host
		at.rpcPort = rpcPort
		if trackingURL == "" {
			trackingURL = "N/A"
		}
		at.origTracking = trackingURL
		a.state = StateRunning
		a.diagnostics = ""
		return nil
	})
}

// FailAttempt ends the current attempt with FAILED (the AM container exited
// without unregistering). If the application has attempts left — counting
// only failures inside attempt-failures-validity-interval when that is > 0 —
// a new attempt is scheduled and the application goes back to ACCEPTED;
// otherwise the application ends FAILED/FAILED.
func (s *Server) FailAttempt(id, diagnostics string) error {
	return s.withApp(id, func(a *app) error {
		at := a.current()
		if a.final() || a.state == StateKilling || at == nil {
			return fmt.Errorf("rmtest: %s: no live attempt (app %s)", id, a.state)
		}
		s.failAttempt(a, at, diagnostics)
		return nil
	})
}

func (s *Server) failAttempt(a *app, at *attempt, diagnostics string) {
	now := s.nowMS()
	at.state = AttemptFailed
	at.finished = now
	at.diagnostics = diagnostics
	failures := 0
	for _, x := range a.attempts {
		if x.state == AttemptFailed && (a.validityMS <= 0 || x.finished > now-a.validityMS) {
			failures++
		}
	}
	if failures < a.maxAttempts {
		a.state = StateAccepted
		a.diagnostics = fmt.Sprintf("AM Container for %s exited. %s", a.attemptID(at.n), diagnostics)
		s.newAttempt(a)
		return
	}
	a.state = StateFailed
	a.finalStatus = "FAILED"
	a.finished = now
	a.diagnostics = fmt.Sprintf("Application %s failed %d times (global limit =%d; local limit is =%d) due to AM Container for %s exited with  exitCode: 1\nFailing this attempt.Diagnostics: %s\n. Failing the application.",
		a.id, failures, s.opts.GlobalMaxAttempts, a.maxAttempts, a.attemptID(at.n), diagnostics)
}

// Finish unregisters the current (RUNNING) attempt with a final status
// (SUCCEEDED, FAILED, KILLED or ENDED). The application reports FINISHED
// at once, but its internal state stays FINISHING until AMContainerExited,
// as on the real RM while the AM process lingers.
func (s *Server) Finish(id, finalStatus, diagnostics string) error {
	switch finalStatus {
	case "SUCCEEDED", "FAILED", "KILLED", "ENDED":
	default:
		return fmt.Errorf("rmtest: bad final status %q", finalStatus)
	}
	return s.withApp(id, func(a *app) error {
		at := a.current()
		if a.state != StateRunning || at == nil || at.state != AttemptRunning {
			return fmt.Errorf("rmtest: %s: not RUNNING with a registered attempt (app %s)", id, a.state)
		}
		at.state = AttemptFinishing
		at.finished = s.nowMS()
		at.diagnostics = diagnostics
		a.state = StateFinishing
		a.finalStatus = finalStatus
		a.diagnostics = diagnostics
		a.progress = 100
		a.finished = at.finished
		return nil
	})
}

// AMContainerExited ends a FINISHING application: internal state FINISHED.
func (s *Server) AMContainerExited(id string) error {
	return s.withApp(id, func(a *app) error {
		if a.state != StateFinishing {
			return fmt.Errorf("rmtest: %s is %s, not FINISHING", id, a.state)
		}
		a.state = StateFinished
		a.current().state = AttemptFinished
		return nil
	})
}

// kill handles PUT state KILLED and returns the status and state to answer.
func (s *Server) kill(a *app, user, diagnostics string) (int, string) {
	if a.final() {
		return 200, a.state
	}
	if diagnostics != "" {
		a.diagnostics = fmt.Sprintf("Application %s was killed by user %s with diagnostic message: %s", a.id, user, diagnostics)
	} else if !a.killRequested {
		a.diagnostics = "Application killed by user."
	}
	if a.killRequested || s.opts.KillImmediately {
		a.state = StateKilled
		a.finalStatus = "KILLED"
		a.progress = 100
		a.finished = s.nowMS()
		if at := a.current(); at != nil && at.state != AttemptFailed {
			at.state = AttemptKilled
			at.finished = a.finished
		}
		return 200, StateKilled
	}
	a.killRequested = true
	before := a.state
	a.beforeKill = a.publicState()
	a.state = StateKilling
	return 202, before
}

func splitTags(s string) []string {
	var out []string
	for _, t := range strings.Split(s, ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}
