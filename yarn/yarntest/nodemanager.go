package yarntest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/tidewatch/tidewatch/yarn/hadoopproto"
	"github.com/tidewatch/tidewatch/yarn/ipc"
	"github.com/tidewatch/tidewatch/yarn/ipc/ipctest"
	"github.com/tidewatch/tidewatch/yarn/nm"
	"github.com/tidewatch/tidewatch/yarn/token"
)

// worker is a container the scheduler allocated to an attempt besides its AM
// container. The fake NodeManager runs it once the AM starts it.
type worker struct {
	id       *hadoopproto.ContainerIdProto
	name     string // container id string
	app      string
	attempt  string // attempt id string: the user of the attempt's NM token
	resource *hadoopproto.ResourceProto
	token    token.Token // its container token
	dir      string

	// The rest is guarded by Cluster.mu.
	accepted bool // the NM accepted a start request for it
	pid      int  // of the process, which leads its own process group; 0 if none
	started  time.Time
	exited   chan struct{} // closed once the process has been waited for; nil if none
	// cause is the exit status a release, a stop or the end of the attempt
	// imposes, whatever the process does on the way; 0 if none.
	cause     int32
	causeDiag string
	done      bool // completed: status and diag are final
	status    int32
	diag      string
}

// WorkerContainer describes a worker container, for tests.
type WorkerContainer struct {
	ID, AttemptID, Dir string
	// PID is the container's process (and process group) id; 0 if it was
	// never started.
	PID     int
	Started time.Time
	// Completed is set once the container has completed: its process ended,
	// or it was released, or its attempt ended before it was started.
	Completed   bool
	ExitStatus  int32 // when Completed: the exit code, 128+signal, or a negative ContainerExitStatus
	Diagnostics string
}

// WorkerContainers returns an application's worker containers (not its AM
// containers, see Launches) in allocation order.
func (c *Cluster) WorkerContainers(appID string) []WorkerContainer {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []WorkerContainer
	for _, w := range c.workers {
		if w.app != appID {
			continue
		}
		out = append(out, WorkerContainer{
			ID: w.name, AttemptID: w.attempt, Dir: w.dir, PID: w.pid, Started: w.started,
			Completed: w.done, ExitStatus: w.status, Diagnostics: w.diag,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// KillContainer SIGKILLs a running worker container's process group, as a
// lost node or the kernel's OOM killer would, and waits until its process
// has been reaped. The AM learns of it from allocate (exit status 137) and
// getContainerStatuses.
func (c *Cluster) KillContainer(id string) error {
	c.mu.Lock()
	w := c.workers[id]
	var err error
	switch {
	case w == nil:
		err = fmt.Errorf("yarntest: kill %s: no such worker container", id)
	case w.pid == 0:
		err = fmt.Errorf("yarntest: kill %s: the container was never started", id)
	case w.done:
		err = fmt.Errorf("yarntest: kill %s: the container has already completed (exit status %d)", id, w.status)
	}
	if err != nil {
		c.mu.Unlock()
		return err
	}
	pid, exited := w.pid, w.exited
	c.mu.Unlock()
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("yarntest: kill %s (process group %d): %w", id, pid, err)
	}
	<-exited
	return nil
}

// nmSecret is the NM's NMTokenSecretManager: it knows the NM tokens the
// scheduler issued, and the user is the attempt id string.
func (c *Cluster) nmSecret(identifier []byte) ([]byte, string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ct := c.nmTokens[string(identifier)]
	if ct == nil || ct.sched.nmToken == nil {
		return nil, "", ipctest.ErrUnknownToken
	}
	return ct.sched.nmToken.Password, ct.attempt, nil
}

func containerFailure(id *hadoopproto.ContainerIdProto, msg string) *hadoopproto.ContainerExceptionMapProto {
	return &hadoopproto.ContainerExceptionMapProto{ContainerId: id, Exception: &hadoopproto.SerializedExceptionProto{
		Message: proto.String(msg), ClassName: proto.String(ipc.ClassYarnException),
	}}
}

// startContainers is ContainerManagerImpl.startContainers. Each container is
// checked (its token issued here, allocated to the caller's attempt, not
// started before) and launched; a failure goes to failed_requests. As on a
// real NM, a localization failure is no start failure: the container then
// completes with exit status -1000 (INVALID) and the reason as diagnostics.
func (c *Cluster) startContainers(_ context.Context, call ipctest.CallInfo, req *hadoopproto.StartContainersRequestProto) (*hadoopproto.StartContainersResponseProto, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	resp := &hadoopproto.StartContainersResponseProto{}
	for i, r := range req.GetStartContainerRequest() {
		tp := r.GetContainerToken()
		var ident hadoopproto.ContainerTokenIdentifierProto
		if tp.GetKind() != token.KindContainer || proto.Unmarshal(tp.GetIdentifier(), &ident) != nil || ident.ContainerId == nil {
			return nil, exception(ipc.ClassInvalidToken, fmt.Sprintf("start request %d carries no valid %s token", i, token.KindContainer))
		}
		id := ident.GetContainerId()
		if err := c.startLocked(call.User, id, tp, r.GetContainerLaunchContext()); err != nil {
			resp.FailedRequests = append(resp.FailedRequests, containerFailure(id, err.Error()))
			continue
		}
		resp.SucceededRequests = append(resp.SucceededRequests, id)
	}
	return resp, nil
}

func (c *Cluster) startLocked(user string, id *hadoopproto.ContainerIdProto, tp *hadoopproto.TokenProto, lc *hadoopproto.ContainerLaunchContextProto) error {
	name := hadoopproto.ContainerIDString(id)
	w := c.workers[name]
	switch {
	case w == nil || !bytes.Equal(w.token.Identifier, tp.GetIdentifier()) || !hmac.Equal(w.token.Password, tp.GetPassword()):
		return fmt.Errorf("Unauthorized request to start container.\n Invalid container token for %s: the ResourceManager of this cluster did not allocate it", name)
	case w.attempt != user:
		return fmt.Errorf("Unauthorized request to start container.\n NMToken for application attempt : %s was used for starting container with container token issued for application attempt : %s", user, w.attempt)
	case w.accepted:
		return fmt.Errorf("Unauthorized request to start container.\n Attempt to relaunch the same container with id %s.", name)
	case w.done:
		return fmt.Errorf("Container %s completed before it was started: %s", name, w.diag)
	case len(lc.GetCommand()) == 0:
		return fmt.Errorf("the launch context of container %s has no command", name)
	}
	if lc.Tokens != nil {
		// As Credentials.readTokenStorageStream: a present field must hold
		// a credentials stream, even an empty one.
		if _, err := token.Parse(lc.GetTokens()); err != nil {
			return fmt.Errorf("cannot read the credentials in the launch context of container %s: %v", name, err)
		}
	}
	w.accepted = true
	if err := c.launchWorkerLocked(w, lc); err != nil {
		c.completeLocked(w, nm.ExitInvalid, err.Error())
	}
	return nil
}

var envRef = regexp.MustCompile(`\{\{([A-Za-z_][A-Za-z0-9_]*)\}\}`)

// launchWorkerLocked sets up the container directory as the NM does
// (container_tokens, localized resources, logs) and starts the command.
func (c *Cluster) launchWorkerLocked(w *worker, lc *hadoopproto.ContainerLaunchContextProto) error {
	logDir := filepath.Join(w.dir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return fmt.Errorf("yarntest: container %s: %w", w.name, err)
	}
	// The NM always writes the token file: the launch context's
	// credentials, or none.
	tokens := lc.GetTokens()
	if lc.Tokens == nil {
		tokens = (&token.Credentials{}).MarshalWritable()
	}
	tokenFile := filepath.Join(w.dir, "container_tokens")
	if err := os.WriteFile(tokenFile, tokens, 0o600); err != nil {
		return fmt.Errorf("yarntest: container %s: %w", w.name, err)
	}
	for _, e := range lc.GetLocalResources() {
		if err := localizeURL(w.dir, e.GetKey(), e.GetValue().GetResource()); err != nil {
			return fmt.Errorf("localizing %s: %w", e.GetKey(), err)
		}
	}
	// The NM's variables override the container's (§2.1). Values are
	// expanded as ContainerLaunch.expandEnvironment and the launch script
	// would: {{VAR}} from the environment built so far.
	nmEnv := []string{
		"CONTAINER_ID=" + w.name, "NM_HOST=" + nodeHost, "NM_PORT=" + strconv.Itoa(int(c.nmPort)),
		"NM_HTTP_PORT=" + strconv.Itoa(nmHTTPPort), "LOG_DIRS=" + logDir, "PWD=" + w.dir,
		token.EnvTokenFile + "=" + tokenFile,
	}
	env := append(os.Environ(), c.opts.Env...)
	vars := map[string]string{}
	for _, kv := range append(env, nmEnv...) {
		if k, v, ok := strings.Cut(kv, "="); ok {
			vars[k] = v
		}
	}
	for _, kv := range lc.GetEnvironment() {
		v := expandMarkers(kv.GetValue(), logDir)
		v = envRef.ReplaceAllStringFunc(v, func(m string) string { return vars[envRef.FindStringSubmatch(m)[1]] })
		vars[kv.GetKey()] = v
		env = append(env, kv.GetKey()+"="+v)
	}
	env = append(env, nmEnv...)
	// Commands are joined with spaces; {{VAR}} becomes $VAR for the shell.
	// As launch_container.sh does, the shell execs the command, so a simple
	// command is the container's process itself.
	command := envRef.ReplaceAllString(expandMarkers(strings.Join(lc.GetCommand(), " "), logDir), "$$$1")
	cmd := exec.Command("/bin/sh", "-c", "exec "+command)
	cmd.Dir = w.dir
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("yarntest: container %s: %w", w.name, err)
	}
	exited := make(chan struct{})
	w.pid, w.started, w.exited = cmd.Process.Pid, time.Now(), exited
	c.wg.Go(func() { c.followWorker(w, cmd, exited) })
	return nil
}

// expandMarkers replaces the NM's <LOG_DIR> and <CPS> markers (§2.2).
func expandMarkers(s, logDir string) string {
	return strings.NewReplacer("<LOG_DIR>", logDir, "<CPS>", ":").Replace(s)
}

// localizeURL links a local resource given as a URLProto; only file: URLs
// can be localized here.
func localizeURL(dir, link string, u *hadoopproto.URLProto) error {
	if u.GetScheme() != "file" {
		return fmt.Errorf("yarntest: resource %s://%s%s: only file: URLs can be localized here", u.GetScheme(), u.GetHost(), u.GetFile())
	}
	return linkResource(dir, link, u.GetFile())
}

// followWorker waits for a worker's process and records its completion.
func (c *Cluster) followWorker(w *worker, cmd *exec.Cmd, exited chan struct{}) {
	_ = cmd.Wait()
	status, diag := processStatus(w.name, cmd.ProcessState)
	c.mu.Lock()
	if w.cause != 0 {
		status, diag = w.cause, w.causeDiag
	}
	c.completeLocked(w, status, diag)
	c.mu.Unlock()
	close(exited)
}

// processStatus is the exit status the NM reports for a process: its exit
// code, or 128+signal for one killed by a signal (137 for SIGKILL), as the
// container's bash reports it.
func processStatus(id string, ps *os.ProcessState) (int32, string) {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		code := 128 + int32(ws.Signal())
		return code, fmt.Sprintf("Container %s exited with a non-zero exit code %d. Killed by external signal %d (%v)", id, code, int(ws.Signal()), ws.Signal())
	}
	code := int32(ps.ExitCode())
	if code == 0 {
		return 0, ""
	}
	return code, fmt.Sprintf("Exception from container-launch. Container id: %s Exit code: %d", id, code)
}

// completeLocked records a worker's completion once, for the next allocate
// of its attempt.
func (c *Cluster) completeLocked(w *worker, status int32, diag string) {
	if w.done {
		return
	}
	w.done, w.status, w.diag = true, status, diag
	if ct := c.attempts[w.attempt]; ct != nil {
		ct.sched.completed = append(ct.sched.completed, w.statusLocked())
	}
}

func (w *worker) statusLocked() *hadoopproto.ContainerStatusProto {
	if !w.done {
		return &hadoopproto.ContainerStatusProto{
			ContainerId: w.id, State: hadoopproto.ContainerStateProto_C_RUNNING.Enum(), Diagnostics: proto.String(""),
			ExitStatus: proto.Int32(nm.ExitInvalid), Capability: w.resource, ContainerSubState: hadoopproto.ContainerSubStateProto_CSS_RUNNING.Enum(),
		}
	}
	return &hadoopproto.ContainerStatusProto{
		ContainerId: w.id, State: hadoopproto.ContainerStateProto_C_COMPLETE.Enum(), Diagnostics: proto.String(w.diag),
		ExitStatus: proto.Int32(w.status), Capability: w.resource, ContainerSubState: hadoopproto.ContainerSubStateProto_CSS_DONE.Enum(),
	}
}

// stopLocked ends a worker container with the given exit status, whatever
// its process does on the way: a running process gets SIGTERM and, after
// Options.StopGrace, SIGKILL (ContainerLaunch.cleanupContainer); one never
// started completes at once.
func (c *Cluster) stopLocked(w *worker, status int32, diag string) {
	if w.done || w.cause != 0 {
		return
	}
	w.cause, w.causeDiag = status, diag
	if w.pid == 0 {
		c.completeLocked(w, status, diag)
		return
	}
	pid, exited := w.pid, w.exited
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	c.wg.Go(func() {
		t := time.NewTimer(c.opts.StopGrace)
		defer t.Stop()
		select {
		case <-exited:
		case <-t.C:
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
	})
}

// endAttemptLocked kills the worker containers of an attempt whose AM
// container has exited. There is no keep-containers-across-application-
// attempts support: a later attempt never inherits containers. After the
// application finished they complete with -107 (KILLED_AFTER_APP_COMPLETION),
// otherwise with -100 (ABORTED), as the RM reports them.
func (c *Cluster) endAttemptLocked(ct *container) {
	ct.ended = true
	status, diag := nm.ExitAborted, "Container of a completed attempt"
	if ct.finished {
		status, diag = nm.ExitKilledAfterAppCompletion, "Container killed after the application completed"
	}
	for _, w := range c.workers {
		if w.attempt == ct.attempt {
			c.stopLocked(w, status, diag)
		}
	}
}

// callerApp is the application of the attempt an NM token authenticated.
func (c *Cluster) callerAppLocked(user string) string {
	if ct := c.attempts[user]; ct != nil {
		return ct.app
	}
	return ""
}

// knownLocked finds a container the NM has accepted, for stop and status
// calls, which the NM authorizes per application.
func (c *Cluster) knownLocked(user, verb string, id *hadoopproto.ContainerIdProto) (*worker, error) {
	name := hadoopproto.ContainerIDString(id)
	w := c.workers[name]
	if w == nil || !w.accepted {
		return nil, fmt.Errorf("Container %s is not handled by this NodeManager", name)
	}
	if w.app != c.callerAppLocked(user) {
		return nil, fmt.Errorf("Unauthorized request to %s container.\n NMToken for application attempt : %s does not belong to the application of container %s", verb, user, name)
	}
	return w, nil
}

// getContainerStatuses reports C_RUNNING (exit -1000) or C_COMPLETE with the
// exit status.
func (c *Cluster) getContainerStatuses(_ context.Context, call ipctest.CallInfo, req *hadoopproto.GetContainerStatusesRequestProto) (*hadoopproto.GetContainerStatusesResponseProto, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	resp := &hadoopproto.GetContainerStatusesResponseProto{}
	for _, id := range req.GetContainerId() {
		w, err := c.knownLocked(call.User, "get status of", id)
		if err != nil {
			resp.FailedRequests = append(resp.FailedRequests, containerFailure(id, err.Error()))
			continue
		}
		resp.Status = append(resp.Status, w.statusLocked())
	}
	return resp, nil
}

// stopContainers stops running containers: they complete with -105
// (KILLED_BY_APPMASTER). Stopping a completed container succeeds (§12.3).
func (c *Cluster) stopContainers(_ context.Context, call ipctest.CallInfo, req *hadoopproto.StopContainersRequestProto) (*hadoopproto.StopContainersResponseProto, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	resp := &hadoopproto.StopContainersResponseProto{}
	for _, id := range req.GetContainerId() {
		w, err := c.knownLocked(call.User, "stop", id)
		if err != nil {
			resp.FailedRequests = append(resp.FailedRequests, containerFailure(id, err.Error()))
			continue
		}
		c.stopLocked(w, nm.ExitKilledByAppMaster, "Container killed by the ApplicationMaster.")
		resp.SucceededRequests = append(resp.SucceededRequests, id)
	}
	return resp, nil
}
