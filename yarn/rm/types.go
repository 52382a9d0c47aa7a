package rm

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"
)

// Resource is a ResourceInfo: memory in MB and virtual cores.
type Resource struct {
	MemoryMB int64 `json:"memory"`
	VCores   int32 `json:"vCores"`
}

// NewApplication is the answer of POST /apps/new-application (root-unwrapped).
type NewApplication struct {
	ApplicationID             string   `json:"application-id"`
	MaximumResourceCapability Resource `json:"maximum-resource-capability"`
}

// LocalResourceType is how the NodeManager treats a localized file.
type LocalResourceType string

// Visibility is the scope in which the NodeManager shares a localized file.
type Visibility string

const (
	TypeFile    LocalResourceType = "FILE"
	TypeArchive LocalResourceType = "ARCHIVE"
	TypePattern LocalResourceType = "PATTERN"

	VisibilityPublic      Visibility = "PUBLIC"
	VisibilityPrivate     Visibility = "PRIVATE"
	VisibilityApplication Visibility = "APPLICATION"
)

// LocalResource is a LocalResourceInfo (§1.3.1). Timestamp must be the
// modification time (ms) the file has on its filesystem after the upload:
// the NodeManager compares it exactly (§1.3.2).
type LocalResource struct {
	URL        string            `json:"resource"`
	Type       LocalResourceType `json:"type"`
	Visibility Visibility        `json:"visibility"`
	Size       int64             `json:"size"`
	Timestamp  int64             `json:"timestamp"`
	Pattern    string            `json:"pattern,omitempty"`
}

// Credentials are the tokens and secrets handed to the AM container
// (§1.3.3). Token values are the token's Writable serialization (§3.3); they
// are encoded with Token.encodeToUrlString's rules on the wire. String and
// GoString print aliases only, never the values.
type Credentials struct {
	Tokens  map[string][]byte
	Secrets map[string][]byte
}

func (c Credentials) String() string {
	return fmt.Sprintf("Credentials{tokens:%v secrets:%v}", sortedKeys(c.Tokens), sortedKeys(c.Secrets))
}

// GoString keeps %#v from printing secret bytes.
func (c Credentials) GoString() string { return c.String() }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

type credentialsJSON struct {
	Tokens  StringMap `json:"tokens,omitempty"`
	Secrets StringMap `json:"secrets,omitempty"`
}

func (c Credentials) MarshalJSON() ([]byte, error) {
	var cj credentialsJSON
	if len(c.Tokens) > 0 {
		cj.Tokens = StringMap{}
		for k, v := range c.Tokens {
			// Token.encodeToUrlString: URL-safe alphabet, no padding, no line breaks.
			cj.Tokens[k] = base64.RawURLEncoding.EncodeToString(v)
		}
	}
	if len(c.Secrets) > 0 {
		cj.Secrets = StringMap{}
		for k, v := range c.Secrets {
			cj.Secrets[k] = base64.StdEncoding.EncodeToString(v)
		}
	}
	return json.Marshal(cj)
}

func (c *Credentials) UnmarshalJSON(b []byte) error {
	var cj credentialsJSON
	if err := json.Unmarshal(b, &cj); err != nil {
		return err
	}
	var err error
	if c.Tokens, err = decodeB64Map(cj.Tokens); err != nil {
		return fmt.Errorf("rm: credentials tokens: %w", err)
	}
	if c.Secrets, err = decodeB64Map(cj.Secrets); err != nil {
		return fmt.Errorf("rm: credentials secrets: %w", err)
	}
	return nil
}

// DecodeHadoopBase64 decodes like commons-codec Base64 in URL-safe mode, which
// the RM uses for tokens, secrets and service data: both alphabets, with or
// without padding.
func DecodeHadoopBase64(s string) ([]byte, error) {
	s = strings.TrimRight(strings.NewReplacer("+", "-", "/", "_", "\n", "", "\r", "").Replace(s), "=")
	return base64.RawURLEncoding.DecodeString(s)
}

func decodeB64Map(m StringMap) (map[string][]byte, error) {
	if m == nil {
		return nil, nil
	}
	out := make(map[string][]byte, len(m))
	for k, v := range m {
		d, err := DecodeHadoopBase64(v)
		if err != nil {
			return nil, fmt.Errorf("alias %q: %w", k, err)
		}
		out[k] = d
	}
	return out, nil
}

// ContainerLaunchContext is the am-container-spec (ContainerLaunchContextInfo).
type ContainerLaunchContext struct {
	// LocalResources maps the link name in the container's working
	// directory to the file to localize.
	LocalResources map[string]LocalResource
	Environment    map[string]string
	// Commands are joined with single spaces by the NodeManager into one
	// shell command.
	Commands    []string
	ServiceData map[string][]byte
	Credentials *Credentials
	// ACLs maps VIEW_APP / MODIFY_APP to "users groups".
	ACLs map[string]string
}

type launchContextJSON struct {
	LocalResources *localResourceMap `json:"local-resources,omitempty"`
	Environment    StringMap         `json:"environment,omitempty"`
	Commands       *commands         `json:"commands,omitempty"`
	ServiceData    StringMap         `json:"service-data,omitempty"`
	Credentials    *Credentials      `json:"credentials,omitempty"`
	ACLs           StringMap         `json:"application-acls,omitempty"`
}

type localResourceMap map[string]LocalResource

func (m localResourceMap) MarshalJSON() ([]byte, error) {
	return encodeEntryMap(map[string]LocalResource(m))
}

func (m *localResourceMap) UnmarshalJSON(b []byte) error {
	v, err := decodeEntryMap[LocalResource](b)
	*m = v
	return err
}

// commands is {"command":"..."} for one command and {"command":[...]} for more.
type commands []string

func (c commands) MarshalJSON() ([]byte, error) {
	if len(c) == 1 {
		return json.Marshal(struct {
			Command string `json:"command"`
		}{c[0]})
	}
	return json.Marshal(struct {
		Command []string `json:"command"`
	}{c})
}

func (c *commands) UnmarshalJSON(b []byte) error {
	var v struct {
		Command list[string] `json:"command"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*c = commands(v.Command)
	return nil
}

func (l ContainerLaunchContext) MarshalJSON() ([]byte, error) {
	var j launchContextJSON
	if len(l.LocalResources) > 0 {
		m := localResourceMap(l.LocalResources)
		j.LocalResources = &m
	}
	if len(l.Environment) > 0 {
		j.Environment = l.Environment
	}
	if len(l.Commands) > 0 {
		c := commands(l.Commands)
		j.Commands = &c
	}
	if len(l.ServiceData) > 0 {
		j.ServiceData = StringMap{}
		for k, v := range l.ServiceData {
			j.ServiceData[k] = base64.RawURLEncoding.EncodeToString(v)
		}
	}
	if l.Credentials != nil && (len(l.Credentials.Tokens) > 0 || len(l.Credentials.Secrets) > 0) {
		j.Credentials = l.Credentials
	}
	if len(l.ACLs) > 0 {
		j.ACLs = l.ACLs
	}
	return json.Marshal(j)
}

func (l *ContainerLaunchContext) UnmarshalJSON(b []byte) error {
	var j launchContextJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*l = ContainerLaunchContext{Environment: j.Environment, ACLs: j.ACLs, Credentials: j.Credentials}
	if j.LocalResources != nil {
		l.LocalResources = *j.LocalResources
	}
	if j.Commands != nil {
		l.Commands = *j.Commands
	}
	if j.ServiceData != nil {
		sd, err := decodeB64Map(j.ServiceData)
		if err != nil {
			return fmt.Errorf("rm: service-data: %w", err)
		}
		l.ServiceData = sd
	}
	return nil
}

// Tags is the application-tags member, {"tag":[...]}.
type Tags []string

func (t Tags) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Tag []string `json:"tag"`
	}{[]string(t)})
}

func (t *Tags) UnmarshalJSON(b []byte) error {
	var v struct {
		Tag list[string] `json:"tag"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*t = Tags(v.Tag)
	return nil
}

// LogAggregationContext is the optional log-aggregation-context member.
type LogAggregationContext struct {
	IncludePattern       string `json:"log-include-pattern,omitempty"`
	ExcludePattern       string `json:"log-exclude-pattern,omitempty"`
	RolledIncludePattern string `json:"rolled-log-include-pattern,omitempty"`
	RolledExcludePattern string `json:"rolled-log-exclude-pattern,omitempty"`
	PolicyClassName      string `json:"log-aggregation-policy-class-name,omitempty"`
	PolicyParameters     string `json:"log-aggregation-policy-parameters,omitempty"`
}

// ApplicationTypeTidewatch is the application-type of every Tidewatch job.
const ApplicationTypeTidewatch = "TIDEWATCH"

// Tag limits enforced by the RM (§1.3 tag notes).
const (
	MaxTags      = 10
	MaxTagLength = 100
)

// ApplicationSubmission is the root-unwrapped ApplicationSubmissionContextInfo
// of POST /apps (§1.3). Members with a meaningful "omitted" default are
// pointers or omitted when zero.
type ApplicationSubmission struct {
	ApplicationID   string                 `json:"application-id"`
	Name            string                 `json:"application-name"`
	ApplicationType string                 `json:"application-type"`
	Queue           string                 `json:"queue,omitempty"`
	Priority        *int32                 `json:"priority,omitempty"` // nil: scheduler default (-1)
	AMContainerSpec ContainerLaunchContext `json:"am-container-spec"`
	UnmanagedAM     bool                   `json:"unmanaged-AM"`
	// CancelTokensWhenComplete: nil means the RM default (true).
	CancelTokensWhenComplete *bool `json:"cancel-tokens-when-complete,omitempty"`
	// MaxAppAttempts ≤ 0 means yarn.resourcemanager.am.max-attempts; larger
	// than the global maximum is clamped by the RM.
	MaxAppAttempts int32    `json:"max-app-attempts"`
	Resource       Resource `json:"resource"`
	// KeepContainers is keep-containers-across-application-attempts (§8.3).
	KeepContainers bool `json:"keep-containers-across-application-attempts"`
	// Tags are lower-cased by the RM; at most MaxTags of MaxTagLength.
	Tags                           Tags                   `json:"application-tags,omitempty"`
	AppNodeLabelExpression         string                 `json:"app-node-label-expression,omitempty"`
	AMContainerNodeLabelExpression string                 `json:"am-container-node-label-expression,omitempty"`
	LogAggregationContext          *LogAggregationContext `json:"log-aggregation-context,omitempty"`
	// AttemptFailuresValidityIntervalMS: when > 0 only failures newer than
	// this window count toward MaxAppAttempts. 0 is sent as omitted (-1).
	AttemptFailuresValidityIntervalMS int64  `json:"attempt-failures-validity-interval,omitempty"`
	ReservationID                     string `json:"reservation-id,omitempty"`
}

// Validate checks what the RM would reject, naming the field.
func (s *ApplicationSubmission) Validate() error {
	if _, err := ParseApplicationID(s.ApplicationID); err != nil {
		return fmt.Errorf("%w: ApplicationID: %w", ErrInvalidSubmission, err)
	}
	if s.Resource.MemoryMB <= 0 {
		return fmt.Errorf("%w: Resource.MemoryMB must be > 0, got %d", ErrInvalidSubmission, s.Resource.MemoryMB)
	}
	if s.Resource.VCores <= 0 {
		return fmt.Errorf("%w: Resource.VCores must be > 0, got %d", ErrInvalidSubmission, s.Resource.VCores)
	}
	if len(s.Tags) > MaxTags {
		return fmt.Errorf("%w: Tags: %d tags, at most %d allowed", ErrInvalidSubmission, len(s.Tags), MaxTags)
	}
	for i, t := range s.Tags {
		if t == "" || len(t) > MaxTagLength || strings.Contains(t, ",") {
			return fmt.Errorf("%w: Tags[%d]: must be 1..%d characters without commas", ErrInvalidSubmission, i, MaxTagLength)
		}
	}
	if s.AttemptFailuresValidityIntervalMS < 0 {
		return fmt.Errorf("%w: AttemptFailuresValidityIntervalMS must be ≥ 0", ErrInvalidSubmission)
	}
	if !s.UnmanagedAM && len(s.AMContainerSpec.Commands) == 0 {
		return fmt.Errorf("%w: AMContainerSpec.Commands: an AM needs a command", ErrInvalidSubmission)
	}
	for name, lr := range s.AMContainerSpec.LocalResources {
		if err := lr.validate(); err != nil {
			return fmt.Errorf("%w: AMContainerSpec.LocalResources[%q].%w", ErrInvalidSubmission, name, err)
		}
	}
	return nil
}

func (lr LocalResource) validate() error {
	u, err := url.Parse(lr.URL)
	if err != nil || u.Scheme == "" || u.Path == "" {
		return fmt.Errorf("URL: %q is not an absolute URI with a path", lr.URL)
	}
	switch lr.Type {
	case TypeFile, TypeArchive:
		if lr.Pattern != "" {
			return fmt.Errorf("Pattern: only allowed with type PATTERN")
		}
	case TypePattern:
	default:
		return fmt.Errorf("Type: %q is not FILE, ARCHIVE or PATTERN", lr.Type)
	}
	switch lr.Visibility {
	case VisibilityPublic, VisibilityPrivate, VisibilityApplication:
	default:
		return fmt.Errorf("Visibility: %q is not PUBLIC, PRIVATE or APPLICATION", lr.Visibility)
	}
	if lr.Timestamp <= 0 {
		return fmt.Errorf("Timestamp: must be the file's modification time in ms, got %d", lr.Timestamp)
	}
	return nil
}

// Application states (YarnApplicationState) and final statuses.
const (
	StateNew       = "NEW"
	StateNewSaving = "NEW_SAVING"
	StateSubmitted = "SUBMITTED"
	StateAccepted  = "ACCEPTED"
	StateRunning   = "RUNNING"
	StateFinished  = "FINISHED"
	StateFailed    = "FAILED"
	StateKilled    = "KILLED"

	FinalUndefined = "UNDEFINED"
	FinalSucceeded = "SUCCEEDED"
	FinalFailed    = "FAILED"
	FinalKilled    = "KILLED"
	FinalEnded     = "ENDED"
)

// IsFinalState reports whether a YarnApplicationState (or internal
// RMAppState) is terminal.
func IsFinalState(s string) bool {
	switch s {
	case StateFinished, StateFailed, StateKilled:
		return true
	}
	return false
}

// Timeout is one application timeout.
type Timeout struct {
	Type                   string `json:"type"`
	ExpiryTime             string `json:"expiryTime"`
	RemainingTimeInSeconds int64  `json:"remainingTimeInSeconds"`
}

// Application is an AppInfo (§1.5). Every field is optional on the wire.
type Application struct {
	ID                  string  `json:"id"`
	User                string  `json:"user"`
	Name                string  `json:"name"`
	Queue               string  `json:"queue"`
	State               string  `json:"state"`
	FinalStatus         string  `json:"finalStatus"`
	Progress            float64 `json:"progress"`
	TrackingUI          string  `json:"trackingUI"`
	TrackingURL         string  `json:"trackingUrl"`
	Diagnostics         string  `json:"diagnostics"`
	ClusterID           int64   `json:"clusterId"`
	ApplicationType     string  `json:"applicationType"`
	ApplicationTags     string  `json:"applicationTags"` // comma-joined; see TagList
	Priority            int32   `json:"priority"`
	StartedTime         int64   `json:"startedTime"`
	LaunchTime          int64   `json:"launchTime"`
	FinishedTime        int64   `json:"finishedTime"`
	ElapsedTime         int64   `json:"elapsedTime"`
	AMContainerLogs     string  `json:"amContainerLogs"`
	AMHostHTTPAddress   string  `json:"amHostHttpAddress"`
	AMRPCAddress        string  `json:"amRPCAddress"`
	MasterNodeID        string  `json:"masterNodeId"`
	AllocatedMB         int64   `json:"allocatedMB"`
	AllocatedVCores     int64   `json:"allocatedVCores"`
	ReservedMB          int64   `json:"reservedMB"`
	ReservedVCores      int64   `json:"reservedVCores"`
	RunningContainers   int64   `json:"runningContainers"`
	MemorySeconds       int64   `json:"memorySeconds"`
	VcoreSeconds        int64   `json:"vcoreSeconds"`
	QueueUsagePercent   float64 `json:"queueUsagePercentage"`
	ClusterUsagePercent float64 `json:"clusterUsagePercentage"`
	// ResourceSecondsMap is written with the member "entry" repeated; the
	// decoder keeps every entry.
	ResourceSecondsMap         Int64Map      `json:"resourceSecondsMap"`
	PreemptedResourceMB        int64         `json:"preemptedResourceMB"`
	PreemptedResourceVCores    int64         `json:"preemptedResourceVCores"`
	NumNonAMContainerPreempted int64         `json:"numNonAMContainerPreempted"`
	NumAMContainerPreempted    int64         `json:"numAMContainerPreempted"`
	LogAggregationStatus       string        `json:"logAggregationStatus"`
	UnmanagedApplication       bool          `json:"unmanagedApplication"`
	AppNodeLabelExpression     string        `json:"appNodeLabelExpression"`
	AMNodeLabelExpression      string        `json:"amNodeLabelExpression"`
	Timeouts                   timeoutsField `json:"timeouts"`
}

type timeoutsField struct {
	Timeout list[Timeout] `json:"timeout"`
}

// TagList splits ApplicationTags.
func (a *Application) TagList() []string {
	if a.ApplicationTags == "" {
		return nil
	}
	return strings.Split(a.ApplicationTags, ",")
}

// TimeoutList returns the application's timeouts.
func (a *Application) TimeoutList() []Timeout { return a.Timeouts.Timeout }

// AppAttempt is one item of /apps/{id}/appattempts. In 3.3.6 it carries no
// state; use Attempt for that.
type AppAttempt struct {
	ID                       int32  `json:"id"`
	StartTime                int64  `json:"startTime"`
	FinishedTime             int64  `json:"finishedTime"`
	ContainerID              string `json:"containerId"`
	NodeHTTPAddress          string `json:"nodeHttpAddress"`
	NodeID                   string `json:"nodeId"`
	LogsLink                 string `json:"logsLink"`
	BlacklistedNodes         string `json:"blacklistedNodes"`
	NodesBlacklistedBySystem string `json:"nodesBlacklistedBySystem"`
	AppAttemptID             string `json:"appAttemptId"`
	AppAttemptState          string `json:"appAttemptState"` // absent in 3.3.6 lists
}

// AttemptReport is the root-unwrapped /apps/{id}/appattempts/{attemptId}
// answer, whose numbers are strings.
type AttemptReport struct {
	AppAttemptID        string `json:"appAttemptId"`
	Host                string `json:"host"`
	RPCPort             Int64  `json:"rpcPort"`
	TrackingURL         string `json:"trackingUrl"`
	OriginalTrackingURL string `json:"originalTrackingUrl"`
	Diagnostics         string `json:"diagnosticsInfo"`
	State               string `json:"appAttemptState"` // RMAppAttemptState
	AMContainerID       string `json:"amContainerId"`
	StartedTime         Int64  `json:"startedTime"`
	FinishedTime        Int64  `json:"finishedTime"`
}

// KillResult is the answer to a kill.
type KillResult struct {
	// State is the internal RMAppState the RM returned (ACCEPTED, KILLING,
	// KILLED, FINISHED, ...).
	State string
	// Done is true for a 200 answer: the application is in a final state
	// (KILLED, or FINISHED/FAILED if it had ended before the kill).
	Done bool
}

// ClusterInfo is GET /info.
type ClusterInfo struct {
	ID                     int64  `json:"id"`
	StartedOn              int64  `json:"startedOn"`
	State                  string `json:"state"`
	HAState                string `json:"haState"`
	RMStateStoreName       string `json:"rmStateStoreName"`
	ResourceManagerVersion string `json:"resourceManagerVersion"`
	HadoopVersion          string `json:"hadoopVersion"`
	HAZooKeeperConnState   string `json:"haZooKeeperConnectionState"`
}

// ClusterMetrics is GET /metrics.
type ClusterMetrics struct {
	AppsSubmitted         int64 `json:"appsSubmitted"`
	AppsCompleted         int64 `json:"appsCompleted"`
	AppsPending           int64 `json:"appsPending"`
	AppsRunning           int64 `json:"appsRunning"`
	AppsFailed            int64 `json:"appsFailed"`
	AppsKilled            int64 `json:"appsKilled"`
	ReservedMB            int64 `json:"reservedMB"`
	AvailableMB           int64 `json:"availableMB"`
	AllocatedMB           int64 `json:"allocatedMB"`
	PendingMB             int64 `json:"pendingMB"`
	TotalMB               int64 `json:"totalMB"`
	ReservedVirtualCores  int64 `json:"reservedVirtualCores"`
	AvailableVirtualCores int64 `json:"availableVirtualCores"`
	AllocatedVirtualCores int64 `json:"allocatedVirtualCores"`
	PendingVirtualCores   int64 `json:"pendingVirtualCores"`
	TotalVirtualCores     int64 `json:"totalVirtualCores"`
	ContainersAllocated   int64 `json:"containersAllocated"`
	ContainersReserved    int64 `json:"containersReserved"`
	ContainersPending     int64 `json:"containersPending"`
	TotalNodes            int64 `json:"totalNodes"`
	ActiveNodes           int64 `json:"activeNodes"`
	LostNodes             int64 `json:"lostNodes"`
	UnhealthyNodes        int64 `json:"unhealthyNodes"`
	DecommissioningNodes  int64 `json:"decommissioningNodes"`
	DecommissionedNodes   int64 `json:"decommissionedNodes"`
	RebootedNodes         int64 `json:"rebootedNodes"`
	ShutdownNodes         int64 `json:"shutdownNodes"`
}

// Node is a NodeInfo.
type Node struct {
	Rack                  string  `json:"rack"`
	State                 string  `json:"state"`
	ID                    string  `json:"id"`
	NodeHostName          string  `json:"nodeHostName"`
	NodeHTTPAddress       string  `json:"nodeHTTPAddress"`
	LastHealthUpdate      int64   `json:"lastHealthUpdate"`
	Version               string  `json:"version"`
	HealthReport          string  `json:"healthReport"`
	NumContainers         int64   `json:"numContainers"`
	UsedMemoryMB          int64   `json:"usedMemoryMB"`
	AvailMemoryMB         int64   `json:"availMemoryMB"`
	UsedVirtualCores      int64   `json:"usedVirtualCores"`
	AvailableVirtualCores int64   `json:"availableVirtualCores"`
	MemUtilization        float64 `json:"memUtilization"`
	CPUUtilization        float64 `json:"cpuUtilization"`
}

// Queue is one scheduler queue. Capacity fields are percentages as the
// scheduler reports them (CapacityScheduler); FairScheduler queues carry
// resources instead and leave them zero.
type Queue struct {
	Name             string  `json:"queueName"`
	Type             string  `json:"type"`
	State            string  `json:"state"`
	Capacity         float64 `json:"capacity"`
	UsedCapacity     float64 `json:"usedCapacity"`
	MaxCapacity      float64 `json:"maxCapacity"`
	AbsoluteCapacity float64 `json:"absoluteCapacity"`
	NumApplications  int64   `json:"numApplications"`
	Children         []Queue `json:"-"`
}

// Leaf reports whether the queue has no children (applications go to leaves).
func (q Queue) Leaf() bool { return len(q.Children) == 0 }

type queueJSON struct {
	Queue
	Queues      *queueList `json:"queues"`      // CapacityScheduler
	ChildQueues *queueList `json:"childQueues"` // FairScheduler
}

type queueList struct {
	Queue list[queueJSON] `json:"queue"`
}

func (q queueJSON) toQueue() Queue {
	out := q.Queue
	for _, l := range []*queueList{q.Queues, q.ChildQueues} {
		if l == nil {
			continue
		}
		for _, c := range l.Queue {
			out.Children = append(out.Children, c.toQueue())
		}
	}
	return out
}

// SchedulerInfo is GET /scheduler: the scheduler type, the queue tree where
// the scheduler reports one, and the raw schedulerInfo for everything else.
type SchedulerInfo struct {
	Type string // capacityScheduler, fairScheduler, fifoScheduler
	Root *Queue // nil for the FIFO scheduler
	Raw  json.RawMessage
}

// LeafQueues returns the names of the leaf queues, depth first.
func (s *SchedulerInfo) LeafQueues() []string {
	var out []string
	var walk func(q Queue)
	walk = func(q Queue) {
		if q.Leaf() {
			out = append(out, q.Name)
			return
		}
		for _, c := range q.Children {
			walk(c)
		}
	}
	if s.Root != nil {
		walk(*s.Root)
	}
	return out
}

func parseSchedulerInfo(raw json.RawMessage) (*SchedulerInfo, error) {
	var head struct {
		Type      string     `json:"type"`
		RootQueue *queueJSON `json:"rootQueue"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil, err
	}
	si := &SchedulerInfo{Type: head.Type, Raw: raw}
	switch {
	case head.RootQueue != nil:
		root := head.RootQueue.toQueue()
		si.Root = &root
	case head.Type == "capacityScheduler":
		var q queueJSON
		if err := json.Unmarshal(raw, &q); err != nil {
			return nil, err
		}
		root := q.toQueue()
		if root.Name == "" {
			root.Name = "root"
		}
		si.Root = &root
	}
	return si, nil
}

// isJSON reports whether a body looks like a JSON object.
func isJSON(b []byte) bool {
	b = bytes.TrimSpace(b)
	return len(b) > 0 && b[0] == '{'
}

// NodeContainer is the NodeManager's view of a container
// (GET http://<nm-http>/ws/v1/node/containers/{id}).
type NodeContainer struct {
	ID                  string       `json:"id"`
	State               string       `json:"state"`
	ExitCode            int32        `json:"exitCode"`
	Diagnostics         string       `json:"diagnostics"`
	User                string       `json:"user"`
	TotalMemoryNeededMB int64        `json:"totalMemoryNeededMB"`
	TotalVCoresNeeded   int64        `json:"totalVCoresNeeded"`
	ExecutionType       string       `json:"executionType"`
	ContainerLogsLink   string       `json:"containerLogsLink"`
	NodeID              string       `json:"nodeId"`
	ContainerLogFiles   list[string] `json:"containerLogFiles"`
}
