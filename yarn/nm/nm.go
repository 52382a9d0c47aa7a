// Package nm is the ApplicationMaster's client of YARN's
// ContainerManagementProtocol (HADOOP_PROTOCOLS.md §7): start, query and stop
// containers on one NodeManager. A Client holds one connection to one NM,
// authenticated with SASL TOKEN using the NM token the RM issued for that
// node (amrm.Client.NMToken), and can carry many calls.
package nm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strconv"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"

	"github.com/tidewatch/tidewatch/yarn/hadoopproto"
	"github.com/tidewatch/tidewatch/yarn/ipc"
	"github.com/tidewatch/tidewatch/yarn/token"
)

// Container exit statuses (ContainerExitStatus, §7.5). Other values are the
// process's own exit code.
const (
	ExitSuccess                    int32 = 0
	ExitInvalid                    int32 = -1000
	ExitAborted                    int32 = -100
	ExitDisksFailed                int32 = -101
	ExitPreempted                  int32 = -102
	ExitKilledExceededVMem         int32 = -103
	ExitKilledExceededPMem         int32 = -104
	ExitKilledByAppMaster          int32 = -105
	ExitKilledByResourceManager    int32 = -106
	ExitKilledAfterAppCompletion   int32 = -107
	ExitKilledByContainerScheduler int32 = -108
	ExitKilledForExcessLogs        int32 = -109
)

var exitNames = map[int32]string{
	ExitSuccess: "SUCCESS", ExitInvalid: "INVALID", ExitAborted: "ABORTED", ExitDisksFailed: "DISKS_FAILED",
	ExitPreempted: "PREEMPTED", ExitKilledExceededVMem: "KILLED_EXCEEDED_VMEM", ExitKilledExceededPMem: "KILLED_EXCEEDED_PMEM",
	ExitKilledByAppMaster: "KILLED_BY_APPMASTER", ExitKilledByResourceManager: "KILLED_BY_RESOURCEMANAGER",
	ExitKilledAfterAppCompletion: "KILLED_AFTER_APP_COMPLETION", ExitKilledByContainerScheduler: "KILLED_BY_CONTAINER_SCHEDULER",
	ExitKilledForExcessLogs: "KILLED_FOR_EXCESS_LOGS",
}

// ExitStatusName names a ContainerExitStatus value, or "exit code N".
func ExitStatusName(code int32) string {
	if n, ok := exitNames[code]; ok {
		return n
	}
	return "exit code " + strconv.Itoa(int(code))
}

var (
	// ErrInvalidOptions reports invalid Options.
	ErrInvalidOptions = errors.New("nm: invalid options")
	// ErrBadURL reports a local-resource URL that cannot be expressed.
	ErrBadURL = errors.New("nm: bad resource URL")
)

// Options configure a Client.
type Options struct {
	// Addr is the NM's NodeId, host:port (ContainerProto.nodeId).
	Addr string
	// Token is the NM token for this node.
	Token          token.Token
	PingInterval   time.Duration
	ConnectTimeout time.Duration
	Logger         *logrus.Entry
}

// Validate reports the first invalid field.
func (o Options) Validate() error {
	if o.Addr == "" {
		return fmt.Errorf("%w: Addr is empty", ErrInvalidOptions)
	}
	if o.Token.Kind != token.KindNM || len(o.Token.Identifier) == 0 {
		return fmt.Errorf("%w: Token is not an %s token", ErrInvalidOptions, token.KindNM)
	}
	return nil
}

// Client talks to one NodeManager.
type Client struct {
	rpc *ipc.Client
	log *logrus.Entry
}

// New returns a client; it connects on the first call.
func New(opts Options) (*Client, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		opts.Logger = logrus.NewEntry(l)
	}
	log := opts.Logger.WithField("component", "nm").WithField("node", opts.Addr)
	ro := ipc.DefaultOptions()
	ro.Addrs = []string{opts.Addr}
	ro.Protocol = hadoopproto.ContainerManagementProtocolName
	ro.ProtocolVersion = hadoopproto.YARNProtocolVersion
	ro.Token = opts.Token
	ro.Logger = log
	if opts.PingInterval != 0 {
		ro.PingInterval = opts.PingInterval
	}
	if opts.ConnectTimeout != 0 {
		ro.ConnectTimeout = opts.ConnectTimeout
	}
	rpc, err := ipc.New(ro)
	if err != nil {
		return nil, fmt.Errorf("nm: %w", err)
	}
	return &Client{rpc: rpc, log: log}, nil
}

// Close closes the connection. Idempotent.
func (c *Client) Close() error { return c.rpc.Close() }

// ResourceType is LocalResourceTypeProto.
type ResourceType = hadoopproto.LocalResourceTypeProto

// Visibility is LocalResourceVisibilityProto.
type Visibility = hadoopproto.LocalResourceVisibilityProto

// LocalResource is a file the NM downloads into the container's directory.
// Size and Timestamp must equal the file's length and modification time.
type LocalResource struct {
	URL        string // e.g. hdfs://nn:8020/user/x/job.jar
	Size       int64
	Timestamp  int64
	Type       ResourceType
	Visibility Visibility
	Pattern    string // for PATTERN resources
}

// URLProto converts a URL string as Hadoop's URL.fromURI does: port -1 when
// the URL has none, host unset for host-less URLs (§7.3).
func URLProto(s string) (*hadoopproto.URLProto, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadURL, err)
	}
	if u.Scheme == "" {
		return nil, fmt.Errorf("%w: %q has no scheme", ErrBadURL, s)
	}
	p := &hadoopproto.URLProto{Scheme: proto.String(u.Scheme), Port: proto.Int32(-1), File: proto.String(u.Path)}
	if h := u.Hostname(); h != "" {
		p.Host = proto.String(h)
	}
	if ps := u.Port(); ps != "" {
		n, err := strconv.ParseInt(ps, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%w: port %q", ErrBadURL, ps)
		}
		p.Port = proto.Int32(int32(n))
	}
	if u.User != nil {
		p.UserInfo = proto.String(u.User.String())
	}
	return p, nil
}

// LaunchContext is what the NM runs (§7.2, §7.3).
type LaunchContext struct {
	LocalResources map[string]LocalResource
	Environment    map[string]string
	Commands       []string
	// Tokens is a credentials blob (token.Credentials.MarshalWritable) for
	// the container, or nil to send no tokens field at all.
	Tokens      []byte
	ServiceData map[string][]byte // keys must be NM aux services
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Proto builds the ContainerLaunchContextProto (maps in key order).
func (lc LaunchContext) Proto() (*hadoopproto.ContainerLaunchContextProto, error) {
	p := &hadoopproto.ContainerLaunchContextProto{Command: lc.Commands}
	if lc.Tokens != nil {
		p.Tokens = lc.Tokens
	}
	for _, k := range sortedKeys(lc.LocalResources) {
		r := lc.LocalResources[k]
		u, err := URLProto(r.URL)
		if err != nil {
			return nil, fmt.Errorf("local resource %q: %w", k, err)
		}
		lr := &hadoopproto.LocalResourceProto{
			Resource: u, Size: proto.Int64(r.Size), Timestamp: proto.Int64(r.Timestamp),
			Type: r.Type.Enum(), Visibility: r.Visibility.Enum(),
		}
		if r.Pattern != "" {
			lr.Pattern = proto.String(r.Pattern)
		}
		p.LocalResources = append(p.LocalResources, &hadoopproto.StringLocalResourceMapProto{Key: proto.String(k), Value: lr})
	}
	for _, k := range sortedKeys(lc.Environment) {
		p.Environment = append(p.Environment, &hadoopproto.StringStringMapProto{Key: proto.String(k), Value: proto.String(lc.Environment[k])})
	}
	for _, k := range sortedKeys(lc.ServiceData) {
		p.ServiceData = append(p.ServiceData, &hadoopproto.StringBytesMapProto{Key: proto.String(k), Value: lc.ServiceData[k]})
	}
	return p, nil
}

// StartRequest starts one allocated container.
type StartRequest struct {
	// Container is the allocated container; its container token is passed
	// to the NM verbatim.
	Container *hadoopproto.ContainerProto
	Launch    LaunchContext
}

// ContainerError is a per-container failure the NM reports while the call
// itself succeeds (failed_requests).
type ContainerError struct {
	ContainerID *hadoopproto.ContainerIdProto
	Class       string
	Message     string
}

func (e *ContainerError) Error() string {
	return fmt.Sprintf("nm: container %s: %s: %s", hadoopproto.ContainerIDString(e.ContainerID), e.Class, e.Message)
}

func containerErrors(in []*hadoopproto.ContainerExceptionMapProto) []*ContainerError {
	var out []*ContainerError
	for _, f := range in {
		out = append(out, &ContainerError{ContainerID: f.GetContainerId(), Class: f.GetException().GetClassName(), Message: f.GetException().GetMessage()})
	}
	return out
}

// StartResult lists what started and what did not.
type StartResult struct {
	Succeeded        []*hadoopproto.ContainerIdProto
	Failed           []*ContainerError
	ServicesMetaData map[string][]byte
}

// StartContainers starts containers; each can fail on its own (Failed).
func (c *Client) StartContainers(ctx context.Context, reqs []StartRequest) (*StartResult, error) {
	req := &hadoopproto.StartContainersRequestProto{}
	for i, r := range reqs {
		if r.Container.GetContainerToken() == nil {
			return nil, fmt.Errorf("nm: start request %d: container has no container token", i)
		}
		lc, err := r.Launch.Proto()
		if err != nil {
			return nil, fmt.Errorf("nm: start request %d: %w", i, err)
		}
		req.StartContainerRequest = append(req.StartContainerRequest, &hadoopproto.StartContainerRequestProto{
			ContainerLaunchContext: lc,
			ContainerToken:         r.Container.GetContainerToken(),
		})
	}
	var resp hadoopproto.StartContainersResponseProto
	if err := c.rpc.Call(ctx, hadoopproto.MethodStartContainers, req, &resp); err != nil {
		return nil, fmt.Errorf("nm: start containers: %w", err)
	}
	res := &StartResult{Succeeded: resp.GetSucceededRequests(), Failed: containerErrors(resp.GetFailedRequests()), ServicesMetaData: map[string][]byte{}}
	for _, m := range resp.GetServicesMetaData() {
		res.ServicesMetaData[m.GetKey()] = m.GetValue()
	}
	return res, nil
}

// GetContainerStatuses queries containers; unknown ones come back in failed.
func (c *Client) GetContainerStatuses(ctx context.Context, ids []*hadoopproto.ContainerIdProto) ([]*hadoopproto.ContainerStatusProto, []*ContainerError, error) {
	var resp hadoopproto.GetContainerStatusesResponseProto
	if err := c.rpc.Call(ctx, hadoopproto.MethodGetContainerStatuses, &hadoopproto.GetContainerStatusesRequestProto{ContainerId: ids}, &resp); err != nil {
		return nil, nil, fmt.Errorf("nm: get container statuses: %w", err)
	}
	return resp.GetStatus(), containerErrors(resp.GetFailedRequests()), nil
}

// StopContainers stops containers. A container that already exited is
// reported as succeeded (§12.3).
func (c *Client) StopContainers(ctx context.Context, ids []*hadoopproto.ContainerIdProto) ([]*hadoopproto.ContainerIdProto, []*ContainerError, error) {
	var resp hadoopproto.StopContainersResponseProto
	if err := c.rpc.Call(ctx, hadoopproto.MethodStopContainers, &hadoopproto.StopContainersRequestProto{ContainerId: ids}, &resp); err != nil {
		return nil, nil, fmt.Errorf("nm: stop containers: %w", err)
	}
	return resp.GetSucceededRequests(), containerErrors(resp.GetFailedRequests()), nil
}
