package rules

import (
	"fmt"
	"time"

	"github.com/expr-lang/expr/vm"

	"github.com/tidewatch/tidewatch/monitor/cep"
)

// Level is how serious a rule's event is.
type Level string

// The levels of the seed's catalogue.
const (
	LevelInfo  Level = "INFO"
	LevelWarn  Level = "WARN"
	LevelFatal Level = "FATAL"
)

// Severity orders the levels: INFO 1, WARN 2, FATAL 3; 0 for anything else.
func (l Level) Severity() int {
	switch l {
	case LevelInfo:
		return 1
	case LevelWarn:
		return 2
	case LevelFatal:
		return 3
	}
	return 0
}

// Scope is the component whose metrics a rule reads: the job master
// (jobmanager, in Flink's words) or a worker (taskmanager).
type Scope string

// The scopes.
const (
	ScopeJobManager  Scope = "jobmanager"
	ScopeTaskManager Scope = "taskmanager"
)

// ActionType names what a rule asks the platform to do when it fires.
type ActionType string

// The actions the monitor knows.
const (
	// ActionMigrateToPebble moves keyed state from the heap backend to the
	// LSM backend, live (param keyGroups, default "all").
	ActionMigrateToPebble ActionType = "migrate-to-pebble"
	// ActionMigrateToHeap moves keyed state back to the heap backend.
	ActionMigrateToHeap ActionType = "migrate-to-heap"
	// ActionSavepoint takes a savepoint (param targetDirectory, optional).
	ActionSavepoint ActionType = "savepoint"
	// ActionRestart restarts the job from its latest checkpoint.
	ActionRestart ActionType = "restart"
	// ActionRescale changes the job's parallelism (param parallelism, an
	// absolute value, or factor, a multiplier of the current one).
	ActionRescale ActionType = "rescale"
)

// DefaultActionCooldown is how long after an action the same action is not
// taken again for the same job, unless the rule says otherwise.
const DefaultActionCooldown = 15 * time.Minute

// Action is what a rule asks for when it fires.
type Action struct {
	Type ActionType `json:"type"`
	// Params are the validated parameters: keyGroups (string) for
	// migrations, targetDirectory (string) for savepoints, parallelism (int)
	// or factor (float64) for rescale.
	Params map[string]any `json:"params,omitempty"`
	// DryRun makes the action a recommendation: it is reported with the
	// firing and never carried out.
	DryRun bool `json:"dryRun,omitempty"`
	// Cooldown is the least time between two runs of this action for one job.
	Cooldown time.Duration `json:"cooldown,omitempty"`
}

// Stage is one named event of a pattern.
type Stage struct {
	Name string `json:"name"`
	// Where are the conditions of the event, ANDed and evaluated in order,
	// so that a cheap test written first spares an expensive one.
	Where []string `json:"where"`
	// Or are conditions ORed with the Where conjunction.
	Or    []string `json:"or,omitempty"`
	Until string   `json:"until,omitempty"`
	// Contiguity with the previous stage (not used on the first stage).
	Contiguity cep.Contiguity `json:"contiguity"`
	// Not makes the stage negative: notNext with strict contiguity,
	// notFollowedBy with relaxed contiguity.
	Not bool `json:"not,omitempty"`
	// TimesFrom and TimesTo are set by times (equal for times: N); TimesTo
	// is 0 when times is absent.
	TimesFrom, TimesTo int `json:",omitempty"`
	// TimesOrMore is set by timesOrMore: N, and is 1 for oneOrMore.
	TimesOrMore       int  `json:",omitempty"`
	Optional          bool `json:",omitempty"`
	Greedy            bool `json:",omitempty"`
	Consecutive       bool `json:",omitempty"`
	AllowCombinations bool `json:",omitempty"`

	Line int `json:"-"`
}

// Output is one output field: an expression over the matched events and
// the name it is reported under.
type Output struct {
	Name string `json:"name"`
	Expr string `json:"expr"`
	Line int    `json:"-"`

	prog *vm.Program
}

// Rule is one parsed and compiled rule.
type Rule struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Level       Level  `json:"level"`
	Scope       Scope  `json:"scope"`
	// Metrics, when not empty, is the rule's input: only metric events with
	// one of these names reach its pattern. Without it the rule sees every
	// event of its scope and its conditions must select by metricsName.
	Metrics []string `json:"metrics,omitempty"`
	// PartitionBy are the event fields (or labels) that key the pattern's
	// state; DefaultPartitionBy when the file does not say.
	PartitionBy []string      `json:"partitionBy"`
	Within      time.Duration `json:"within,omitempty"`
	// Skip is the after-match skip strategy as written (skipPastLastEvent by
	// default).
	Skip    string   `json:"skip"`
	Pattern []Stage  `json:"pattern"`
	Outputs []Output `json:"output,omitempty"`
	Action  *Action  `json:"action,omitempty"`
	// ResolveAfter is how long after its last match an active firing of the
	// rule is resolved.
	ResolveAfter time.Duration `json:"resolveAfter"`
	// Disabled rules are parsed and checked but not run.
	Disabled bool `json:"disabled,omitempty"`

	// File and Line say where the rule is defined.
	File string `json:"file"`
	Line int    `json:"line"`

	skip        cep.SkipStrategy
	nfa         *cep.NFA
	fingerprint string
}

// DefaultPartitionBy keys a rule's state by job, worker and metric key, so
// that a pattern sees one series at a time: one operator's rate, one
// process's heap.
var DefaultPartitionBy = []string{"jobID", "tmID", "metricsKey"}

// DefaultResolveAfter is a rule's ResolveAfter when it has no window.
const DefaultResolveAfter = 10 * time.Minute

// NFA returns the rule's compiled automaton.
func (r *Rule) NFA() *cep.NFA { return r.nfa }

// Fingerprint identifies what the rule's automaton state depends on: its
// scope, input, partitioning, window, skip strategy and pattern. Two rules
// with the same fingerprint can share partial matches, which is how a
// reload keeps the state of the rules it did not change.
func (r *Rule) Fingerprint() string { return r.fingerprint }

// Location is "file:line" of the rule.
func (r *Rule) Location() string { return fmt.Sprintf("%s:%d", r.File, r.Line) }

// StageNames returns the names of the rule's stages in order.
func (r *Rule) StageNames() []string {
	out := make([]string, len(r.Pattern))
	for i, s := range r.Pattern {
		out[i] = s.Name
	}
	return out
}
