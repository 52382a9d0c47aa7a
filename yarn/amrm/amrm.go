package amrm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"

	"github.com/tidewatch/tidewatch/yarn/hadoopproto"
	"github.com/tidewatch/tidewatch/yarn/ipc"
	"github.com/tidewatch/tidewatch/yarn/token"
)

// Exception classes with a protocol meaning (§6.4.5).
const (
	ClassNotRegistered    = "org.apache.hadoop.yarn.exceptions.ApplicationMasterNotRegisteredException"
	ClassAttemptNotFound  = "org.apache.hadoop.yarn.exceptions.ApplicationAttemptNotFoundException"
	ClassInvalidAMRequest = "org.apache.hadoop.yarn.exceptions.InvalidApplicationMasterRequestException"
)

var (
	// ErrResync means the RM no longer knows the registration (RM restart or
	// failover, or AM_RESYNC): Register again, then re-send every outstanding
	// ask, the blacklist and pending releases.
	ErrResync = errors.New("amrm: the RM asks the AM to re-register")
	// ErrShutdown means the attempt is gone (ApplicationAttemptNotFound or
	// AM_SHUTDOWN): stop without unregistering.
	ErrShutdown = errors.New("amrm: the RM asks the AM to shut down")
	// ErrInvalidOptions reports invalid Options.
	ErrInvalidOptions = errors.New("amrm: invalid options")
)

// FinalStatus is the application's final status sent on Finish.
type FinalStatus int

const (
	Succeeded FinalStatus = iota + 1
	Failed
	Killed
)

func (s FinalStatus) proto() (hadoopproto.FinalApplicationStatusProto, error) {
	switch s {
	case Succeeded:
		return hadoopproto.FinalApplicationStatusProto_APP_SUCCEEDED, nil
	case Failed:
		return hadoopproto.FinalApplicationStatusProto_APP_FAILED, nil
	case Killed:
		return hadoopproto.FinalApplicationStatusProto_APP_KILLED, nil
	}
	return 0, fmt.Errorf("amrm: unknown final status %d", int(s))
}

// Options configure a Client.
type Options struct {
	// Addrs are the scheduler addresses (see SchedulerAddresses).
	Addrs []string
	// Token is the AMRM token (token.Credentials.AMRMToken).
	Token token.Token
	// FinishRetryInterval is the wait between finish calls while the RM
	// has not yet unregistered the attempt (default 100ms, as Java).
	FinishRetryInterval time.Duration
	// PingInterval and ConnectTimeout are passed to ipc (defaults there).
	PingInterval   time.Duration
	ConnectTimeout time.Duration
	Logger         *logrus.Entry
}

// DefaultOptions returns the defaults; set Addrs and Token.
func DefaultOptions() Options {
	return Options{FinishRetryInterval: 100 * time.Millisecond}
}

// Validate reports the first invalid field.
func (o Options) Validate() error {
	if len(o.Addrs) == 0 {
		return fmt.Errorf("%w: Addrs is empty", ErrInvalidOptions)
	}
	if o.Token.Kind != token.KindAMRM || len(o.Token.Identifier) == 0 {
		return fmt.Errorf("%w: Token is not a %s token", ErrInvalidOptions, token.KindAMRM)
	}
	if o.FinishRetryInterval < 0 {
		return fmt.Errorf("%w: FinishRetryInterval %v is negative", ErrInvalidOptions, o.FinishRetryInterval)
	}
	return nil
}

// Resource is a container size: only memory and vcores are sent and read
// (§6.3 notes on ResourceProto).
type Resource struct {
	MemoryMB int64
	VCores   int32
}

func (r Resource) proto() *hadoopproto.ResourceProto {
	return &hadoopproto.ResourceProto{Memory: proto.Int64(r.MemoryMB), VirtualCores: proto.Int32(r.VCores)}
}

func resourceOf(p *hadoopproto.ResourceProto) Resource {
	return Resource{MemoryMB: p.GetMemory(), VCores: p.GetVirtualCores()}
}

// NMToken is the token for one NodeManager, keyed by its NodeId (host:port).
type NMToken struct {
	Node  string
	Token token.Token
}

// Registration is the result of Register.
type Registration struct {
	MaxCapability                  Resource
	Queue                          string
	ContainersFromPreviousAttempts []*hadoopproto.ContainerProto
	NMTokensFromPreviousAttempts   []NMToken
	Raw                            *hadoopproto.RegisterApplicationMasterResponseProto
}

// Ask is one ResourceRequest: an absolute count of outstanding containers
// for (priority, resource name, capability). Send NumContainers 0 to cancel.
type Ask struct {
	Priority      int32
	ResourceName  string // "" means "*" (ANY)
	Capability    Resource
	NumContainers int32
	// RelaxLocality defaults to true (the proto default) when nil.
	RelaxLocality       *bool
	NodeLabelExpression string
}

// AllocateRequest is one heartbeat.
type AllocateRequest struct {
	Asks            []Ask
	Release         []*hadoopproto.ContainerIdProto
	BlacklistAdd    []string
	BlacklistRemove []string
	Progress        float32
	TrackingURL     string // "" leaves it unchanged
}

// AllocateResult is the RM's answer to one heartbeat.
type AllocateResult struct {
	ResponseID                     int32
	Allocated                      []*hadoopproto.ContainerProto
	Completed                      []*hadoopproto.ContainerStatusProto
	NMTokens                       []NMToken
	Limit                          Resource
	NumClusterNodes                int32
	UpdatedNodes                   []*hadoopproto.NodeReportProto
	Preempt                        *hadoopproto.PreemptionMessageProto
	ContainersFromPreviousAttempts []*hadoopproto.ContainerProto
	// AMRMToken is set when the RM rolled its master key. The client already
	// uses it for new connections; persist it if the AM must survive restarts.
	AMRMToken *token.Token
	Raw       *hadoopproto.AllocateResponseProto
}

// Client talks to the RM scheduler for one application attempt.
type Client struct {
	opts Options
	log  *logrus.Entry
	rpc  *ipc.Client

	callMu     sync.Mutex // allocate and finish are sequential
	responseID int32

	mu       sync.Mutex
	nmTokens map[string]token.Token
	token    token.Token
}

// New returns a client; it connects on the first call.
func New(opts Options) (*Client, error) {
	d := DefaultOptions()
	if opts.FinishRetryInterval == 0 {
		opts.FinishRetryInterval = d.FinishRetryInterval
	}
	if opts.Logger == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		opts.Logger = logrus.NewEntry(l)
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	log := opts.Logger.WithField("component", "amrm")
	if id, err := token.DecodeAMRMIdentifier(opts.Token.Identifier); err == nil {
		log = log.WithField("attempt", id.User())
	}
	ro := ipc.DefaultOptions()
	ro.Addrs = opts.Addrs
	ro.Protocol = hadoopproto.ApplicationMasterProtocolName
	ro.ProtocolVersion = hadoopproto.YARNProtocolVersion
	ro.Auth = ipc.AuthToken
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
		return nil, fmt.Errorf("amrm: %w", err)
	}
	return &Client{opts: opts, log: log, rpc: rpc, nmTokens: map[string]token.Token{}, token: opts.Token}, nil
}

// Close closes the connection. Idempotent.
func (c *Client) Close() error { return c.rpc.Close() }

// AMRMToken returns the current AMRM token (the latest rolled one).
func (c *Client) AMRMToken() token.Token {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.token
}

// NMToken returns the cached NM token for a node (host:port), as Java's
// NMTokenCache: the RM sends it only with the first container on a node.
func (c *Client) NMToken(node string) (token.Token, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.nmTokens[node]
	return t, ok
}

// NodeAddr is the host:port of a NodeId, the key of NM tokens and the NM's
// RPC address.
func NodeAddr(n *hadoopproto.NodeIdProto) string {
	return fmt.Sprintf("%s:%d", n.GetHost(), n.GetPort())
}

func (c *Client) storeNMTokens(in []*hadoopproto.NMTokenProto) []NMToken {
	out := make([]NMToken, 0, len(in))
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, nt := range in {
		t := NMToken{Node: NodeAddr(nt.GetNodeId()), Token: token.FromProto(nt.GetToken())}
		c.nmTokens[t.Node] = t.Token // a newer token for a node replaces the old one
		out = append(out, t)
	}
	return out
}

func classify(op string, err error) error {
	var re *ipc.RemoteError
	if errors.As(err, &re) {
		switch re.Class {
		case ClassNotRegistered:
			return fmt.Errorf("amrm: %s: %w: %w", op, ErrResync, err)
		case ClassAttemptNotFound:
			return fmt.Errorf("amrm: %s: %w: %w", op, ErrShutdown, err)
		}
	}
	return fmt.Errorf("amrm: %s: %w", op, err)
}

// Register registers the attempt (§6.4.1) and resets the responseId to 0.
// rpcPort is -1 when the AM serves no RPC; trackingURL may be "".
func (c *Client) Register(ctx context.Context, host string, rpcPort int32, trackingURL string) (*Registration, error) {
	c.callMu.Lock()
	defer c.callMu.Unlock()
	req := &hadoopproto.RegisterApplicationMasterRequestProto{
		Host:        proto.String(host),
		RpcPort:     proto.Int32(rpcPort),
		TrackingUrl: proto.String(trackingURL),
	}
	var resp hadoopproto.RegisterApplicationMasterResponseProto
	if err := c.rpc.Call(ctx, hadoopproto.MethodRegisterApplicationMaster, req, &resp); err != nil {
		return nil, classify("register", err)
	}
	c.responseID = 0
	reg := &Registration{
		MaxCapability:                  resourceOf(resp.GetMaximumCapability()),
		Queue:                          resp.GetQueue(),
		ContainersFromPreviousAttempts: resp.GetContainersFromPreviousAttempts(),
		NMTokensFromPreviousAttempts:   c.storeNMTokens(resp.GetNmTokensFromPreviousAttempts()),
		Raw:                            &resp,
	}
	c.log.WithField("queue", reg.Queue).Info("registered with the RM")
	return reg, nil
}

// Allocate sends one heartbeat (§6.4.2, §6.4.3). It sends the responseId of
// the last response received, so after a lost response the RM answers the
// repeated request from its cache.
func (c *Client) Allocate(ctx context.Context, r AllocateRequest) (*AllocateResult, error) {
	c.callMu.Lock()
	defer c.callMu.Unlock()
	req := &hadoopproto.AllocateRequestProto{
		ResponseId: proto.Int32(c.responseID),
		Progress:   proto.Float32(r.Progress),
		Release:    r.Release,
	}
	for _, a := range r.Asks {
		name := a.ResourceName
		if name == "" {
			name = "*"
		}
		rr := &hadoopproto.ResourceRequestProto{
			Priority:      &hadoopproto.PriorityProto{Priority: proto.Int32(a.Priority)},
			ResourceName:  proto.String(name),
			Capability:    a.Capability.proto(),
			NumContainers: proto.Int32(a.NumContainers),
			RelaxLocality: a.RelaxLocality,
		}
		if a.NodeLabelExpression != "" {
			rr.NodeLabelExpression = proto.String(a.NodeLabelExpression)
		}
		req.Ask = append(req.Ask, rr)
	}
	if len(r.BlacklistAdd) > 0 || len(r.BlacklistRemove) > 0 {
		req.BlacklistRequest = &hadoopproto.ResourceBlacklistRequestProto{BlacklistAdditions: r.BlacklistAdd, BlacklistRemovals: r.BlacklistRemove}
	}
	if r.TrackingURL != "" {
		req.TrackingUrl = proto.String(r.TrackingURL)
	}
	var resp hadoopproto.AllocateResponseProto
	if err := c.rpc.Call(ctx, hadoopproto.MethodAllocate, req, &resp); err != nil {
		return nil, classify("allocate", err)
	}
	c.responseID = resp.GetResponseId()
	if resp.AMCommand != nil {
		switch resp.GetAMCommand() {
		case hadoopproto.AMCommandProto_AM_RESYNC:
			return nil, fmt.Errorf("amrm: allocate: %w (AM_RESYNC)", ErrResync)
		case hadoopproto.AMCommandProto_AM_SHUTDOWN:
			return nil, fmt.Errorf("amrm: allocate: %w (AM_SHUTDOWN)", ErrShutdown)
		}
	}
	res := &AllocateResult{
		ResponseID:                     resp.GetResponseId(),
		Allocated:                      resp.GetAllocatedContainers(),
		Completed:                      resp.GetCompletedContainerStatuses(),
		NMTokens:                       c.storeNMTokens(resp.GetNmTokens()),
		Limit:                          resourceOf(resp.GetLimit()),
		NumClusterNodes:                resp.GetNumClusterNodes(),
		UpdatedNodes:                   resp.GetUpdatedNodes(),
		Preempt:                        resp.GetPreempt(),
		ContainersFromPreviousAttempts: resp.GetContainersFromPreviousAttempts(),
		Raw:                            &resp,
	}
	if resp.AmRmToken != nil {
		t := token.FromProto(resp.GetAmRmToken())
		c.mu.Lock()
		c.token = t
		c.mu.Unlock()
		c.rpc.SetToken(t) // for every future connection (§6.4.4)
		res.AMRMToken = &t
		c.log.Info("AMRM token rolled over")
	}
	return res, nil
}

// Finish unregisters the attempt (§8.1), repeating the call until the RM
// reports isUnregistered. trackingURL may be "" to leave it unchanged.
func (c *Client) Finish(ctx context.Context, status FinalStatus, diagnostics, trackingURL string) error {
	st, err := status.proto()
	if err != nil {
		return err
	}
	c.callMu.Lock()
	defer c.callMu.Unlock()
	req := &hadoopproto.FinishApplicationMasterRequestProto{
		Diagnostics:            proto.String(diagnostics),
		FinalApplicationStatus: st.Enum(),
	}
	if trackingURL != "" {
		req.TrackingUrl = proto.String(trackingURL)
	}
	for {
		var resp hadoopproto.FinishApplicationMasterResponseProto
		if err := c.rpc.Call(ctx, hadoopproto.MethodFinishApplicationMaster, req, &resp); err != nil {
			return classify("finish", err)
		}
		if resp.GetIsUnregistered() {
			c.log.WithField("final_status", st.String()).Info("unregistered from the RM")
			return nil
		}
		t := time.NewTimer(c.opts.FinishRetryInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("amrm: finish: %w", ctx.Err())
		case <-t.C:
		}
	}
}
