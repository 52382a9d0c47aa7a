// Package yarntest is a one-machine fake YARN cluster for tests: the fake
// ResourceManager REST server of rmtest, a scheduler speaking Hadoop IPC
// (ApplicationMasterProtocol with SASL DIGEST-MD5 and AMRM tokens, on
// ipctest), and a NodeManager stand-in that launches each accepted
// application's AM command as a real local process in its own container
// directory — with the container environment of HADOOP_PROTOCOLS.md §2, the
// localized resources linked in, and a token file holding the attempt's AMRM
// token. An AM that registers makes its application RUNNING with its
// tracking URL; one that unregisters finishes it; one that exits without
// unregistering fails the attempt, and the RM starts the next one, as YARN
// does. Killing the application kills the process.
//
// An AM can also get worker containers (§6.4.3, §7): the scheduler's
// allocate hands out containers for its asks — asynchronously, as a real RM
// does: in a later call than the ask's, an ask replacing the outstanding
// count — with an NM token for the one node, and reports their completion;
// the NodeManager serves ContainerManagementProtocol on its own IPC port
// (SASL DIGEST-MD5 with those NM tokens) and runs started containers as
// local processes. When an attempt's AM container exits, its worker
// containers are killed. LoseRegistrations and ForgetAttempt act out an RM
// restart with and without recovery (§6.4.5).
package yarntest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/tidewatch/tidewatch/yarn/amrm"
	"github.com/tidewatch/tidewatch/yarn/hadoopproto"
	"github.com/tidewatch/tidewatch/yarn/ipc/ipctest"
	"github.com/tidewatch/tidewatch/yarn/nm"
	"github.com/tidewatch/tidewatch/yarn/rm"
	"github.com/tidewatch/tidewatch/yarn/rm/rmtest"
	"github.com/tidewatch/tidewatch/yarn/token"
)

// Options configure a Cluster.
type Options struct {
	// Dir holds the container directories (required).
	Dir string
	// RM configures the fake ResourceManager.
	RM rmtest.Options
	// Env is added to every container's environment (e.g. to make a test
	// binary act as tidewatch).
	Env []string
	// Poll is how often the NodeManager looks for attempts to launch
	// (default 10ms).
	Poll time.Duration
	// MaxContainers is how many worker containers an application may hold
	// at once besides its AM container (default 8).
	MaxContainers int
	// StopGrace is the wait between SIGTERM and SIGKILL when a container is
	// stopped or released (default 250ms, as
	// yarn.nodemanager.sleep-delay-before-sigkill.ms).
	StopGrace time.Duration
	// QOP is the SASL qop list the scheduler and NodeManager ports offer:
	// "auth" (default, hadoop.rpc.protection=authentication), "auth-int"
	// (integrity) or "auth-conf" (privacy).
	QOP string
}

// Cluster is a running fake cluster. Close stops it and kills every
// container.
type Cluster struct {
	RM     *rmtest.Server
	sched  *ipctest.Server
	nm     *ipctest.Server // the NodeManager's ContainerManagementProtocol
	nmPort int32
	opts   Options

	mu         sync.Mutex
	attempts   map[string]*container // attempt id string -> AM container
	containers map[string]*container // application id -> current AM container
	launches   []Launch
	workers    map[string]*worker    // container id string -> worker container
	nextSeq    map[string]int64      // application id -> next container sequence number
	nmTokens   map[string]*container // NM token identifier -> attempt it was issued to

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Launch records one container start, for tests.
type Launch struct {
	ApplicationID, AttemptID, ContainerID, Dir string
	Started                                    time.Time
}

// container is an attempt's AM container, and the attempt.
type container struct {
	app, attempt, id, dir string
	user                  string // the application's submitter
	attemptProto          *hadoopproto.ApplicationAttemptIdProto
	token                 token.Token
	cmd                   *exec.Cmd
	registered, finished  bool
	ended                 bool // the AM container has exited
	// forgotten: the scheduler no longer knows the attempt (ForgetAttempt).
	forgotten     bool
	registrations []Registration
	env           map[string]string // what the NodeManager set (AMEnvironment)
	sched         attemptSched
	exited        chan struct{}
	exitErr       error
}

// Registration is one registerApplicationMaster call the scheduler
// accepted, for tests.
type Registration struct {
	AttemptID, Host, TrackingURL string
	RPCPort                      int32
}

// WrappedConnections counts the scheduler's and the NodeManager's
// connections that negotiated a SASL security layer (Options.QOP).
func (c *Cluster) WrappedConnections() (scheduler, nodeManager int64) {
	return c.sched.Stats().Wrapped, c.nm.Stats().Wrapped
}

// New starts a cluster.
func New(opts Options) (*Cluster, error) {
	if opts.Dir == "" {
		return nil, errors.New("yarntest: Options.Dir is required")
	}
	if opts.Poll <= 0 {
		opts.Poll = 10 * time.Millisecond
	}
	if opts.MaxContainers <= 0 {
		opts.MaxContainers = 8
	}
	if opts.StopGrace <= 0 {
		opts.StopGrace = 250 * time.Millisecond
	}
	c := &Cluster{
		RM: rmtest.New(opts.RM), opts: opts, attempts: map[string]*container{}, containers: map[string]*container{},
		workers: map[string]*worker{}, nextSeq: map[string]int64{}, nmTokens: map[string]*container{},
	}
	sched, err := ipctest.NewServer(ipctest.Options{Secrets: c.secret, QOP: opts.QOP})
	if err != nil {
		c.RM.Close()
		return nil, err
	}
	c.sched = sched
	p := hadoopproto.ApplicationMasterProtocolName
	ipctest.Handle(sched, p, hadoopproto.MethodRegisterApplicationMaster, c.register)
	ipctest.Handle(sched, p, hadoopproto.MethodAllocate, c.allocate)
	ipctest.Handle(sched, p, hadoopproto.MethodFinishApplicationMaster, c.finish)
	nmSrv, err := ipctest.NewServer(ipctest.Options{Secrets: c.nmSecret, QOP: opts.QOP})
	if err != nil {
		sched.Close()
		c.RM.Close()
		return nil, err
	}
	c.nm = nmSrv
	_, port, _ := net.SplitHostPort(nmSrv.Addr())
	n, _ := strconv.Atoi(port)
	c.nmPort = int32(n)
	p = hadoopproto.ContainerManagementProtocolName
	ipctest.Handle(nmSrv, p, hadoopproto.MethodStartContainers, c.startContainers)
	ipctest.Handle(nmSrv, p, hadoopproto.MethodGetContainerStatuses, c.getContainerStatuses)
	ipctest.Handle(nmSrv, p, hadoopproto.MethodStopContainers, c.stopContainers)
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.wg.Go(func() { c.nodeManager(ctx) })
	return c, nil
}

// Launches returns the containers started so far.
func (c *Cluster) Launches() []Launch {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Launch(nil), c.launches...)
}

// PID returns the process id of an application's current AM container, or 0.
func (c *Cluster) PID(appID string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ct := c.containers[appID]; ct != nil && ct.cmd != nil && ct.cmd.Process != nil {
		select {
		case <-ct.exited:
			return 0
		default:
			return ct.cmd.Process.Pid
		}
	}
	return 0
}

// Close kills every container and stops the servers.
func (c *Cluster) Close() {
	c.cancel()
	// No more calls: nothing new starts.
	c.sched.Close()
	c.nm.Close()
	c.mu.Lock()
	var all []*container
	for _, ct := range c.attempts { // every AM container ever started
		all = append(all, ct)
	}
	for _, w := range c.workers {
		if w.pid != 0 {
			// The whole group, even after its leader exited.
			_ = syscall.Kill(-w.pid, syscall.SIGKILL)
		}
	}
	c.mu.Unlock()
	for _, ct := range all {
		ct.kill()
	}
	c.wg.Wait()
	c.RM.Close()
}

// secret is the RM's AMRMTokenSecretManager: the user is the attempt id.
func (c *Cluster) secret(identifier []byte) ([]byte, string, error) {
	id, err := token.DecodeAMRMIdentifier(identifier)
	if err != nil {
		return nil, "", err
	}
	attempt := hadoopproto.AttemptIDString(id.Attempt)
	c.mu.Lock()
	defer c.mu.Unlock()
	ct := c.attempts[attempt]
	if ct == nil || string(ct.token.Identifier) != string(identifier) {
		return nil, "", ipctest.ErrUnknownToken
	}
	return ct.token.Password, attempt, nil
}

func exception(class, msg string) error {
	return &ipctest.Exception{Class: class, Message: msg}
}

func (c *Cluster) byUser(user string) (*container, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ct := c.attempts[user]
	if ct == nil || ct.forgotten {
		return nil, exception(amrm.ClassAttemptNotFound, "Application attempt "+user+" doesn't exist in ApplicationMasterService cache.")
	}
	return ct, nil
}

func (c *Cluster) register(_ context.Context, call ipctest.CallInfo, req *hadoopproto.RegisterApplicationMasterRequestProto) (*hadoopproto.RegisterApplicationMasterResponseProto, error) {
	ct, err := c.byUser(call.User)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if ct.registered {
		c.mu.Unlock()
		return nil, exception(amrm.ClassInvalidAMRequest, "Application Master is already registered : "+ct.app)
	}
	first := len(ct.registrations) == 0
	ct.registered = true
	ct.registrations = append(ct.registrations, Registration{AttemptID: ct.attempt, Host: req.GetHost(), RPCPort: req.GetRpcPort(), TrackingURL: req.GetTrackingUrl()})
	// Registering resets the responseId protocol (§6.4.1).
	ct.sched.lastID, ct.sched.last = 0, nil
	c.mu.Unlock()
	// A registration again after LoseRegistrations is only recorded: the
	// RM REST state already shows the attempt RUNNING.
	if first {
		if err := c.RM.RegisterAttemptRPC(ct.app, req.GetHost(), int64(req.GetRpcPort()), req.GetTrackingUrl()); err != nil {
			return nil, exception(amrm.ClassInvalidAMRequest, err.Error())
		}
	}
	return &hadoopproto.RegisterApplicationMasterResponseProto{
		MaximumCapability: &hadoopproto.ResourceProto{Memory: proto.Int64(maxAllocationMB), VirtualCores: proto.Int32(maxVCores)},
		Queue:             proto.String("default"),
	}, nil
}

func (c *Cluster) finish(_ context.Context, call ipctest.CallInfo, req *hadoopproto.FinishApplicationMasterRequestProto) (*hadoopproto.FinishApplicationMasterResponseProto, error) {
	ct, err := c.byUser(call.User)
	if err != nil {
		return nil, err
	}
	status := strings.TrimPrefix(req.GetFinalApplicationStatus().String(), "APP_")
	c.mu.Lock()
	if !ct.registered {
		c.mu.Unlock()
		return nil, exception(amrm.ClassNotRegistered, "Application Master is trying to unregister before registering for: "+ct.attempt)
	}
	done := ct.finished
	ct.finished = true
	c.mu.Unlock()
	if !done {
		if err := c.RM.Finish(ct.app, status, req.GetDiagnostics()); err != nil {
			return nil, exception(amrm.ClassInvalidAMRequest, err.Error())
		}
	}
	return &hadoopproto.FinishApplicationMasterResponseProto{IsUnregistered: proto.Bool(true)}, nil
}

// AMEnvironment returns the variables the NodeManager set for the current
// AM container of an application (CONTAINER_ID, NM_HOST,
// HADOOP_TOKEN_FILE_LOCATION, the scheduler address …), so that a test can
// act as that container's AM; nil if there is none.
func (c *Cluster) AMEnvironment(appID string) map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	ct := c.containers[appID]
	if ct == nil {
		return nil
	}
	out := make(map[string]string, len(ct.env))
	for k, v := range ct.env {
		out[k] = v
	}
	return out
}

// Registrations returns the registrations the scheduler accepted from an
// application's attempts, in order.
func (c *Cluster) Registrations(appID string) []Registration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Registration
	for _, l := range c.launches {
		if ct := c.attempts[l.AttemptID]; l.ApplicationID == appID && ct != nil {
			out = append(out, ct.registrations...)
		}
	}
	return out
}

// LoseRegistrations acts as an RM restart or failover with work-preserving
// recovery (§6.4.5): every attempt and its containers live on, but the
// scheduler has lost the registrations, the outstanding asks and the
// containers allocated but not yet handed out. Until an attempt registers
// again, its allocate and finish calls get
// ApplicationMasterNotRegisteredException.
func (c *Cluster) LoseRegistrations() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ct := range c.attempts {
		if !ct.registered || ct.finished {
			continue
		}
		ct.registered = false
		ct.sched.asks = map[askKey]int32{}
		for _, p := range ct.sched.ready {
			if w := c.workers[hadoopproto.ContainerIDString(p.GetId())]; w != nil {
				c.stopLocked(w, nm.ExitAborted, "Container of a restarted ResourceManager")
			}
		}
		ct.sched.ready, ct.sched.readyTokens = nil, nil
	}
}

// ForgetAttempt makes the scheduler forget an application's current
// attempt, as an RM that restarted without recovery does: its calls get
// ApplicationAttemptNotFoundException, which tells an AM to shut down
// without unregistering. The NodeManager still serves the attempt's
// containers.
func (c *Cluster) ForgetAttempt(appID string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	ct := c.containers[appID]
	if ct == nil {
		return fmt.Errorf("yarntest: %s has no AM container", appID)
	}
	ct.forgotten = true
	return nil
}

// nodeManager launches scheduled attempts and follows their processes.
func (c *Cluster) nodeManager(ctx context.Context) {
	t := time.NewTicker(c.opts.Poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, id := range c.RM.AppIDs() {
			s, ok := c.RM.App(id)
			if !ok {
				continue
			}
			switch {
			case s.State == rmtest.StateAccepted && len(s.Attempts) > 0 && s.Attempts[len(s.Attempts)-1].State == rmtest.AttemptScheduled:
				if err := c.launch(s); err != nil {
					_ = c.RM.FailAttempt(id, err.Error())
				}
			case s.State == rmtest.StateKilled || s.InternalState == rmtest.StateKilling:
				c.mu.Lock()
				ct := c.containers[id]
				c.mu.Unlock()
				if ct != nil {
					ct.kill()
				}
			}
		}
	}
}

// launch starts the current attempt's AM container.
func (c *Cluster) launch(s rmtest.Snapshot) error {
	if err := c.RM.LaunchAttempt(s.ID); err != nil {
		return err
	}
	s, _ = c.RM.App(s.ID)
	at := s.Attempts[len(s.Attempts)-1]
	appID, err := rm.ParseApplicationID(s.ID)
	if err != nil {
		return err
	}
	attemptProto := &hadoopproto.ApplicationAttemptIdProto{
		ApplicationId: &hadoopproto.ApplicationIdProto{Id: proto.Int32(int32(appID.Seq)), ClusterTimestamp: proto.Int64(appID.ClusterTimestamp)},
		AttemptId:     proto.Int32(int32(len(s.Attempts))),
	}
	ident, err := proto.Marshal(&hadoopproto.AMRMTokenIdentifierProto{AppAttemptId: attemptProto, KeyId: proto.Int32(1)})
	if err != nil {
		return err
	}
	ct := &container{
		app: s.ID, attempt: hadoopproto.AttemptIDString(attemptProto), id: at.ContainerID, user: s.User,
		dir: filepath.Join(c.opts.Dir, at.ContainerID), attemptProto: attemptProto,
		token:  token.Token{Identifier: ident, Password: randomBytes(20), Kind: token.KindAMRM, Service: c.sched.Addr()},
		sched:  attemptSched{asks: map[askKey]int32{}},
		exited: make(chan struct{}),
	}
	logDir := filepath.Join(ct.dir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return err
	}
	for link, lr := range s.LocalResources {
		if err := localize(ct.dir, link, lr); err != nil {
			return fmt.Errorf("localizing %s: %w", link, err)
		}
	}
	tokenFile := filepath.Join(ct.dir, "container_tokens")
	creds := token.Credentials{Tokens: []token.Entry{{Alias: ct.token.Service, Token: ct.token}}}
	if err := creds.WriteFile(tokenFile); err != nil {
		return err
	}
	if len(s.Commands) == 0 {
		return errors.New("no AM command")
	}
	command := strings.ReplaceAll(s.Commands[0], "<LOG_DIR>", logDir)
	command = strings.ReplaceAll(command, "{{PWD}}", ct.dir)
	// As launch_container.sh does, the shell execs the command, so the
	// container's process is the AM itself.
	cmd := exec.Command("/bin/sh", "-c", "exec "+command)
	cmd.Dir = ct.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	env := append(os.Environ(), c.opts.Env...)
	for k, v := range s.Environment {
		env = append(env, k+"="+v)
	}
	ct.env = map[string]string{
		"CONTAINER_ID": ct.id, "NM_HOST": nodeHost, "NM_PORT": strconv.Itoa(int(c.nmPort)), "NM_HTTP_PORT": strconv.Itoa(nmHTTPPort),
		"HADOOP_TOKEN_FILE_LOCATION": tokenFile, "LOG_DIRS": logDir, "PWD": ct.dir,
		"APPLICATION_WEB_PROXY_BASE": "/proxy/" + s.ID, "APP_SUBMIT_TIME_ENV": fmt.Sprint(time.Now().UnixMilli()),
	}
	if v, ok := s.Environment[amrm.EnvSchedulerAddress]; ok {
		ct.env[amrm.EnvSchedulerAddress] = v
	} else {
		ct.env[amrm.EnvSchedulerAddress] = c.sched.Addr()
	}
	for k, v := range ct.env {
		env = append(env, k+"="+v)
	}
	cmd.Env = env
	// Published and started under the lock: the AM's first call must find
	// its attempt, and readers of ct.cmd take the lock.
	c.mu.Lock()
	c.attempts[ct.attempt] = ct
	c.containers[s.ID] = ct
	c.launches = append(c.launches, Launch{ApplicationID: s.ID, AttemptID: ct.attempt, ContainerID: ct.id, Dir: ct.dir, Started: time.Now()})
	ct.cmd = cmd
	err = cmd.Start()
	c.mu.Unlock()
	if err != nil {
		return err
	}
	c.wg.Go(func() { c.follow(ct) })
	return nil
}

// follow waits for a container's process and tells the RM how it ended.
func (c *Cluster) follow(ct *container) {
	ct.exitErr = ct.cmd.Wait()
	close(ct.exited)
	c.mu.Lock()
	finished := ct.finished
	c.endAttemptLocked(ct)
	c.mu.Unlock()
	if finished {
		_ = c.RM.AMContainerExited(ct.app)
		return
	}
	s, ok := c.RM.App(ct.app)
	if !ok || s.State == rmtest.StateKilled || s.InternalState == rmtest.StateKilling || s.State == rmtest.StateFailed {
		return
	}
	code := -1
	if ct.cmd.ProcessState != nil {
		code = ct.cmd.ProcessState.ExitCode()
	}
	_ = c.RM.FailAttempt(ct.app, fmt.Sprintf("Exception from container-launch. Container id: %s Exit code: %d", ct.id, code))
}

func (ct *container) kill() {
	if ct.cmd == nil || ct.cmd.Process == nil {
		return
	}
	select {
	case <-ct.exited:
		// The container's process is gone; what it started may not be.
		_ = syscall.Kill(-ct.cmd.Process.Pid, syscall.SIGKILL)
		return
	default:
	}
	// The whole process group: the AM and anything it started.
	_ = syscall.Kill(-ct.cmd.Process.Pid, syscall.SIGKILL)
	<-ct.exited
}

// localize links a local resource into the container directory. Only
// file: URLs (and plain paths) are supported: the stager in tests writes
// to a local file system.
func localize(dir, link string, lr rmtest.LocalResource) error {
	p := lr.URL
	if u, err := url.Parse(lr.URL); err == nil && u.Scheme != "" {
		if u.Scheme != "file" {
			return fmt.Errorf("yarntest: resource %s: only file: URLs can be localized here", lr.URL)
		}
		p = u.Path
	}
	return linkResource(dir, link, p)
}

// linkResource links the file or directory at path into dir as link.
func linkResource(dir, link, path string) error {
	if _, err := os.Stat(path); err != nil {
		return err
	}
	return os.Symlink(path, filepath.Join(dir, link))
}
