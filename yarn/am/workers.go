package am

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/tidewatch/tidewatch/yarn/amrm"
	"github.com/tidewatch/tidewatch/yarn/hadoopproto"
	"github.com/tidewatch/tidewatch/yarn/nm"
	"github.com/tidewatch/tidewatch/yarn/rm"
	"github.com/tidewatch/tidewatch/yarn/token"
)

// WorkerOptions make a Session keep worker containers running: Count of
// them, numbered 1 to Count (the AM's own container is 0).
type WorkerOptions struct {
	Count    int
	Resource amrm.Resource
	// Priority of the asks (default 1; the AM container has 0).
	Priority int32
	// Launch returns the launch context of worker k.
	Launch func(k int) (nm.LaunchContext, error)
	// MaxFailures is how many times workers may end in failure before the
	// session gives up (default 10); Failed is then called once. Containers
	// that end through no fault of the application (ABORTED, DISKS_FAILED,
	// PREEMPTED, KILLED_BY_RESOURCEMANAGER) are replaced without counting.
	MaxFailures int
	Failed      func(err error)
	// NodeManager opens a client to a NodeManager (default nm.New).
	NodeManager func(nm.Options) (NodeManager, error)
}

// NodeManager is the part of nm.Client a Session uses.
type NodeManager interface {
	StartContainers(ctx context.Context, reqs []nm.StartRequest) (*nm.StartResult, error)
	StopContainers(ctx context.Context, ids []*hadoopproto.ContainerIdProto) ([]*hadoopproto.ContainerIdProto, []*nm.ContainerError, error)
	Close() error
}

// WorkerState is where a worker is.
type WorkerState string

const (
	WorkerRequested WorkerState = "REQUESTED" // asked for, no container yet
	WorkerRunning   WorkerState = "RUNNING"   // its container was started
	WorkerFinished  WorkerState = "FINISHED"  // exited with status 0: its share is done
	WorkerStopped   WorkerState = "STOPPED"   // ended while the session stopped
)

// WorkerStatus describes one worker for the job master's REST API.
type WorkerStatus struct {
	Index       int         `json:"index"`
	State       WorkerState `json:"state"`
	ContainerID string      `json:"containerId,omitempty"`
	Node        string      `json:"node,omitempty"`
	Started     int64       `json:"startTime,omitempty"` // ms since the epoch
	// Launches counts the containers this worker has had; LastExit is how
	// the previous one ended.
	Launches int    `json:"launches"`
	LastExit string `json:"lastExit,omitempty"`
	// URL is the REST endpoint the running worker registered (RegisterWorker).
	URL string `json:"url,omitempty"`
}

// workers is the Session's bookkeeping of worker containers. The heartbeat
// goroutine changes it; Workers reads it.
type workers struct {
	opts WorkerOptions
	log  *logrus.Entry

	mu    sync.Mutex
	slots []*workerSlot // by index - 1
	nms   map[string]*nmConn
	// asked is the count of the last ask the RM accepted; -1 when the RM
	// may not have one (nothing sent yet, or it restarted).
	asked    int32
	failures int
	gaveUp   bool
	// stopping: no more asks or replacements; the session is ending.
	stopping bool
}

type workerSlot struct {
	status    WorkerStatus
	container *hadoopproto.ContainerProto
}

// nmConn is the client of one NodeManager, made with the NM token it
// authenticates with on (re)connecting. A client that is replaced (a new
// token for its node, or a failed call) is closed once no call uses it.
type nmConn struct {
	client  NodeManager
	token   token.Token
	inUse   int
	retired bool
}

func newWorkers(opts WorkerOptions, log *logrus.Entry) *workers {
	if opts.Priority == 0 {
		opts.Priority = 1
	}
	if opts.MaxFailures <= 0 {
		opts.MaxFailures = 10
	}
	if opts.NodeManager == nil {
		opts.NodeManager = func(o nm.Options) (NodeManager, error) { return nm.New(o) }
	}
	w := &workers{opts: opts, log: log.WithField("component", "workers"), nms: map[string]*nmConn{}, asked: -1}
	for k := 1; k <= opts.Count; k++ {
		w.slots = append(w.slots, &workerSlot{status: WorkerStatus{Index: k, State: WorkerRequested}})
	}
	return w
}

// wantedLocked is the number of containers still wanted.
func (w *workers) wantedLocked() int32 {
	if w.stopping || w.gaveUp {
		return 0
	}
	var n int32
	for _, s := range w.slots {
		if s.status.State == WorkerRequested && s.container == nil {
			n++
		}
	}
	return n
}

// asks is what to ask the RM for in the next heartbeat: nothing while the
// number of containers still wanted is the count the RM already has, else
// that number. An ask replaces the RM's outstanding count, which the RM
// lowers itself as it allocates, and allocation happens between heartbeats:
// re-sending the count before its containers arrive would ask for them
// again (§6.4.3). So, as Java's AMRMClient, the ask goes out only when the
// wanted count changes — up when a worker is lost, down (to 0, say) when
// containers arrive or are no longer needed.
func (w *workers) asks() []amrm.Ask {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := w.wantedLocked()
	if n == w.asked {
		return nil
	}
	return []amrm.Ask{{Priority: w.opts.Priority, Capability: w.opts.Resource, NumContainers: n}}
}

// waiting reports whether workers wait for containers.
func (w *workers) waiting() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.wantedLocked() > 0
}

// sent records that the RM accepted asks (from asks).
func (w *workers) sent(asks []amrm.Ask) {
	if len(asks) == 0 {
		return
	}
	w.mu.Lock()
	w.asked = asks[0].NumContainers
	w.mu.Unlock()
}

// resync makes the next heartbeat send the wanted count again: the RM lost
// its outstanding asks in a restart (§6.4.5).
func (w *workers) resync() {
	w.mu.Lock()
	w.asked = -1
	w.mu.Unlock()
}

// allocated launches workers in newly allocated containers and returns the
// containers it has no use for, to release.
func (w *workers) allocated(ctx context.Context, cs []*hadoopproto.ContainerProto, nmToken func(node string) (token.Token, bool)) []*hadoopproto.ContainerIdProto {
	var release []*hadoopproto.ContainerIdProto
	for _, c := range cs {
		s := w.claim(c)
		if s == nil {
			release = append(release, c.GetId())
			continue
		}
		if err := w.launch(ctx, s, c, nmToken); err != nil {
			w.log.WithError(err).WithFields(logrus.Fields{"worker": s.status.Index, "container": hadoopproto.ContainerIDString(c.GetId())}).Warn("cannot start a worker; asking for another container")
			release = append(release, c.GetId())
			w.lost(s, "start failed: "+err.Error(), true)
		}
	}
	return release
}

// claim gives container c to a worker waiting for one, or returns nil.
func (w *workers) claim(c *hadoopproto.ContainerProto) *workerSlot {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopping || w.gaveUp {
		return nil
	}
	for _, s := range w.slots {
		if s.status.State == WorkerRequested && s.container == nil {
			s.container = c
			s.status.ContainerID = hadoopproto.ContainerIDString(c.GetId())
			s.status.Node = amrm.NodeAddr(c.GetNodeId())
			return s
		}
	}
	return nil
}

func (w *workers) launch(ctx context.Context, s *workerSlot, c *hadoopproto.ContainerProto, nmToken func(string) (token.Token, bool)) error {
	node := amrm.NodeAddr(c.GetNodeId())
	lc, err := w.opts.Launch(s.status.Index)
	if err != nil {
		return err
	}
	conn, err := w.nodeManager(node, nmToken)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res, err := conn.client.StartContainers(ctx, []nm.StartRequest{{Container: c, Launch: lc}})
	w.doneWith(node, conn, err != nil)
	if err != nil {
		return err
	}
	if len(res.Failed) > 0 {
		return res.Failed[0]
	}
	w.mu.Lock()
	s.status.State = WorkerRunning
	s.status.Started = time.Now().UnixMilli()
	s.status.Launches++
	w.mu.Unlock()
	w.log.WithFields(logrus.Fields{"worker": s.status.Index, "container": s.status.ContainerID, "node": node}).Info("started worker container")
	return nil
}

// nodeManager returns the client of node, with the newest NM token the RM
// issued for it: after the RM rolls its NM master key it sends a new token
// for the node with the next container there (§6.4.3), and a client still
// holding the old one could not reconnect once the old key is gone. Such a
// client is replaced. The caller hands the client back with doneWith.
func (w *workers) nodeManager(node string, nmToken func(string) (token.Token, bool)) (*nmConn, error) {
	tok, ok := nmToken(node)
	w.mu.Lock()
	c := w.nms[node]
	if c != nil && (!ok || sameToken(c.token, tok)) {
		c.inUse++
		w.mu.Unlock()
		return c, nil
	}
	if !ok {
		w.mu.Unlock()
		return nil, fmt.Errorf("am: no NM token for node %s", node)
	}
	old := w.retireLocked(node, c)
	client, err := w.opts.NodeManager(nm.Options{Addr: node, Token: tok, Logger: w.log})
	if err == nil {
		c = &nmConn{client: client, token: tok, inUse: 1}
		w.nms[node] = c
	}
	w.mu.Unlock()
	if old != nil {
		w.log.WithField("node", node).Info("the RM sent a new NM token for the node: reconnecting with it")
		old.Close()
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

// doneWith hands back a client from nodeManager; drop replaces it (its call
// failed: the next use connects afresh).
func (w *workers) doneWith(node string, c *nmConn, drop bool) {
	w.mu.Lock()
	c.inUse--
	if drop && w.nms[node] == c {
		w.retireLocked(node, c)
	}
	closeNow := c.retired && c.inUse == 0
	w.mu.Unlock()
	if closeNow {
		c.client.Close()
	}
}

// retireLocked takes c, node's client, out of use; it returns c's client
// if it is to be closed now, or nil if a call still uses it (doneWith
// closes it then).
func (w *workers) retireLocked(node string, c *nmConn) NodeManager {
	if c == nil || c.retired {
		return nil
	}
	c.retired = true
	if w.nms[node] == c {
		delete(w.nms, node)
	}
	if c.inUse > 0 {
		return nil
	}
	return c.client
}

func sameToken(a, b token.Token) bool {
	return a.Kind == b.Kind && a.Service == b.Service && bytes.Equal(a.Identifier, b.Identifier) && bytes.Equal(a.Password, b.Password)
}

// exitNotCounted are the exit statuses of containers lost through no fault
// of the application: released or lost with its node (ABORTED), lost to
// failed disks, preempted, or killed by the RM. YARN does not count them
// against an application (§7.5, §8.2), nor does MaxFailures.
var exitNotCounted = map[int32]bool{
	nm.ExitAborted: true, nm.ExitDisksFailed: true, nm.ExitPreempted: true, nm.ExitKilledByResourceManager: true,
}

// completed records the end of containers. A worker whose container exited
// with 0 has finished its share (a bounded job, or a stop); any other end
// is a failure, and the worker is asked for again.
func (w *workers) completed(statuses []*hadoopproto.ContainerStatusProto) {
	for _, st := range statuses {
		id := hadoopproto.ContainerIDString(st.GetContainerId())
		w.mu.Lock()
		i := slices.IndexFunc(w.slots, func(s *workerSlot) bool { return s.container != nil && s.status.ContainerID == id })
		w.mu.Unlock()
		if i < 0 {
			continue // a released container
		}
		s := w.slots[i]
		exit := fmt.Sprintf("%s: %s", nm.ExitStatusName(st.GetExitStatus()), st.GetDiagnostics())
		log := w.log.WithFields(logrus.Fields{"worker": s.status.Index, "container": id, "exitStatus": st.GetExitStatus()})
		w.mu.Lock()
		stopping := w.stopping
		w.mu.Unlock()
		switch {
		case st.GetExitStatus() == nm.ExitSuccess || stopping:
			state := WorkerFinished
			if stopping {
				state = WorkerStopped
			}
			w.mu.Lock()
			s.status.State, s.status.LastExit, s.container, s.status.URL = state, exit, nil, ""
			w.mu.Unlock()
			log.Info("worker ended")
			continue
		}
		counted := !exitNotCounted[st.GetExitStatus()]
		log.WithFields(logrus.Fields{"diagnostics": st.GetDiagnostics(), "countsAsFailure": counted}).Warn("worker container lost; asking for a new one")
		w.lost(s, exit, counted)
	}
}

// lost puts a worker back to REQUESTED after its container ended; counted
// says whether that counts toward MaxFailures.
func (w *workers) lost(s *workerSlot, exit string, counted bool) {
	w.mu.Lock()
	s.status.State, s.status.LastExit, s.container = WorkerRequested, exit, nil
	s.status.ContainerID, s.status.Node, s.status.URL = "", "", ""
	if !counted {
		w.mu.Unlock()
		return
	}
	w.failures++
	giveUp := w.failures > w.opts.MaxFailures && !w.gaveUp && !w.stopping
	if giveUp {
		w.gaveUp = true
	}
	w.mu.Unlock()
	if giveUp && w.opts.Failed != nil {
		w.opts.Failed(fmt.Errorf("am: workers failed %d times (last: worker %d, %s)", w.failures, s.status.Index, exit))
	}
}

// ErrUnknownWorker reports a registration that matches no running worker.
var ErrUnknownWorker = errors.New("am: no such running worker")

// register records the REST endpoint of worker k, which must be running in
// container containerID.
func (w *workers) register(k int, containerID, url string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if k < 1 || k > len(w.slots) {
		return fmt.Errorf("%w: worker %d of %d", ErrUnknownWorker, k, len(w.slots))
	}
	s := w.slots[k-1]
	if s.status.State != WorkerRunning || s.status.ContainerID != containerID {
		return fmt.Errorf("%w: worker %d runs in %q, not %q", ErrUnknownWorker, k, s.status.ContainerID, containerID)
	}
	s.status.URL = url
	return nil
}

// status lists the workers.
func (w *workers) status() []WorkerStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]WorkerStatus, len(w.slots))
	for i, s := range w.slots {
		out[i] = s.status
	}
	return out
}

// finished reports whether every worker has finished its share, and
// whether the session gave up on them.
func (w *workers) finished() (done, gaveUp bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.slots {
		if s.status.State != WorkerFinished {
			return false, w.gaveUp
		}
	}
	return true, w.gaveUp
}

// running lists the containers of running workers by node.
func (w *workers) running() map[string][]*hadoopproto.ContainerIdProto {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string][]*hadoopproto.ContainerIdProto{}
	for _, s := range w.slots {
		if s.container != nil && s.status.State == WorkerRunning {
			out[s.status.Node] = append(out[s.status.Node], s.container.GetId())
		}
	}
	return out
}

// drain asks for no more workers and lets the running ones end by
// themselves; it reports whether none runs any more.
func (w *workers) drain() (drained bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopping = true
	for _, s := range w.slots {
		if s.container != nil {
			return false
		}
	}
	return true
}

// stop asks for no more workers and stops the running ones.
func (w *workers) stop(ctx context.Context, nmToken func(string) (token.Token, bool)) error {
	w.mu.Lock()
	w.stopping = true
	w.mu.Unlock()
	return w.stopContainers(ctx, nmToken)
}

// stopContainers stops the running workers' containers through their NMs.
func (w *workers) stopContainers(ctx context.Context, nmToken func(string) (token.Token, bool)) error {
	var errs []error
	for node, ids := range w.running() {
		c, err := w.nodeManager(node, nmToken)
		if err == nil {
			_, failed, serr := c.client.StopContainers(ctx, ids)
			w.doneWith(node, c, serr != nil)
			err = serr
			for _, f := range failed {
				errs = append(errs, f)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("stopping workers on %s: %w", node, err))
		}
	}
	return errors.Join(errs...)
}

// close closes the NodeManager clients (one still in use when its call
// returns).
func (w *workers) close() {
	var closeNow []NodeManager
	w.mu.Lock()
	for node, c := range w.nms {
		if cl := w.retireLocked(node, c); cl != nil {
			closeNow = append(closeNow, cl)
		}
	}
	w.mu.Unlock()
	for _, c := range closeNow {
		c.Close()
	}
}

// EnvLocalResources passes the AM container's local resources to the AM,
// which gives worker containers the same: base64 of a JSON object from link
// name to rm.LocalResource (base64, because the NodeManager writes
// environment values into a shell script unescaped).
const EnvLocalResources = "TIDEWATCH_LOCAL_RESOURCES"

// EncodeLocalResources is the EnvLocalResources value of rs.
func EncodeLocalResources(rs map[string]rm.LocalResource) (string, error) {
	b, err := json.Marshal(rs)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// LocalResources decodes EnvLocalResources into the NodeManager's form.
func LocalResources(getenv func(string) string) (map[string]nm.LocalResource, error) {
	v := getenv(EnvLocalResources)
	if v == "" {
		return nil, fmt.Errorf("am: %s is not set: the deployer passes the AM's local resources there for worker containers", EnvLocalResources)
	}
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return nil, fmt.Errorf("am: %s: %w", EnvLocalResources, err)
	}
	var rs map[string]rm.LocalResource
	if err := json.Unmarshal(b, &rs); err != nil {
		return nil, fmt.Errorf("am: %s: %w", EnvLocalResources, err)
	}
	out := make(map[string]nm.LocalResource, len(rs))
	for link, r := range rs {
		typ, ok := hadoopproto.LocalResourceTypeProto_value[string(r.Type)]
		if !ok {
			return nil, fmt.Errorf("am: %s: resource %q has type %q", EnvLocalResources, link, r.Type)
		}
		vis, ok := hadoopproto.LocalResourceVisibilityProto_value[string(r.Visibility)]
		if !ok {
			return nil, fmt.Errorf("am: %s: resource %q has visibility %q", EnvLocalResources, link, r.Visibility)
		}
		out[link] = nm.LocalResource{URL: r.URL, Size: r.Size, Timestamp: r.Timestamp,
			Type: nm.ResourceType(typ), Visibility: nm.Visibility(vis), Pattern: r.Pattern}
	}
	return out, nil
}
