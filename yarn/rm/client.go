package rm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-resty/resty/v2"
	"github.com/sirupsen/logrus"
)

const apiPrefix = "/ws/v1/cluster"

// maxResponseBody bounds what the client reads from one answer.
const maxResponseBody = 64 << 20

// Client talks to the ResourceManager REST API (HADOOP_PROTOCOLS.md §1) of
// one RM or an HA group. It is safe for concurrent use.
type Client struct {
	opts   Options
	bases  []*url.URL
	http   *resty.Client
	log    *logrus.Entry
	active atomic.Int32 // index into bases of the RM believed active
	// wait sleeps between retry rounds; tests never replace it, they set a
	// small Backoff instead.
	wait func(ctx context.Context, d time.Duration) error
}

// New validates opts (after filling defaults) and returns a client.
func New(opts Options) (*Client, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.MaxRetries < 0 {
		opts.MaxRetries = 0
	}
	c := &Client{opts: opts, log: opts.Log.WithField("component", "rm")}
	for _, b := range opts.BaseURLs {
		u, _ := url.Parse(strings.TrimRight(b, "/"))
		c.bases = append(c.bases, u)
	}
	transport := opts.Transport
	if transport == nil {
		transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	c.http = resty.New().
		SetTransport(transport).
		SetLogger(restyLogger{c.log}).
		SetDisableWarn(true).
		SetResponseBodyLimit(maxResponseBody).
		// Redirects are followed by hand so that a standby's 307 can be
		// re-sent with its body to the active RM and remembered.
		SetRedirectPolicy(resty.RedirectPolicyFunc(func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		})).
		SetHeader("Accept", "application/json")
	c.wait = sleepCtx
	return c, nil
}

// ActiveURL returns the base URL of the RM the client currently talks to.
func (c *Client) ActiveURL() string { return c.bases[c.active.Load()].String() }

// call describes one logical request.
type call struct {
	op         string
	method     string
	path       string // below /ws/v1/cluster
	query      url.Values
	body       []byte // JSON, nil for none
	idempotent bool   // false: never re-send after it may have reached an RM
}

// reply is a final (non-redirect) answer from an active RM.
type reply struct {
	status int
	body   []byte
	header http.Header
	url    string
}

type outcome int

const (
	outDone   outcome = iota // a definitive answer: 2xx or 4xx
	outNextRM                // standby, or the request never reached an RM
	outRetry                 // 5xx or a failure after the request may have arrived
)

// do runs a call with failover and retries and returns the first definitive
// answer. 4xx answers are returned as replies, not errors.
func (c *Client) do(ctx context.Context, cl *call) (*reply, error) {
	n := len(c.bases)
	idx := int(c.active.Load())
	tried := 0 // RMs tried in the current round
	rounds := 0
	var lastErr error
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("rm: %s: %w", cl.op, err)
		}
		rep, landed, out, err := c.try(ctx, idx, cl)
		switch out {
		case outDone:
			if landed != int(c.active.Load()) {
				c.log.WithFields(logrus.Fields{"op": cl.op, "rm": c.bases[landed].String()}).Info("using resourcemanager")
				c.active.Store(int32(landed))
			}
			return rep, nil
		case outNextRM:
			lastErr = err
			tried++
			c.log.WithFields(logrus.Fields{"op": cl.op, "rm": c.bases[idx].String(), "error": err}).Debug("resourcemanager not usable, trying the next")
			idx = (idx + 1) % n
			if tried < n {
				continue
			}
		case outRetry:
			if !cl.idempotent {
				return nil, &uncertainError{err}
			}
			lastErr = err
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("rm: %s: %w (last failure: %v)", cl.op, ctxErr, lastErr)
		}
		tried = 0
		rounds++
		if rounds > c.opts.MaxRetries {
			return nil, giveUp(cl.op, rounds, lastErr)
		}
		d := c.opts.Backoff.Delay(rounds)
		c.log.WithFields(logrus.Fields{"op": cl.op, "round": rounds, "backoff": d, "error": lastErr}).Debug("retrying resourcemanager request")
		if err := c.wait(ctx, d); err != nil {
			return nil, fmt.Errorf("rm: %s: %w (last failure: %v)", cl.op, err, lastErr)
		}
	}
}

func giveUp(op string, rounds int, lastErr error) error {
	var re *RemoteError
	if errors.As(lastErr, &re) {
		return fmt.Errorf("rm: %s: giving up after %d tries: %w", op, rounds, lastErr)
	}
	if errors.Is(lastErr, ErrUnavailable) {
		return fmt.Errorf("rm: %s: giving up after %d rounds: %w", op, rounds, lastErr)
	}
	return fmt.Errorf("rm: %s: giving up after %d rounds: %w: %w", op, rounds, ErrUnavailable, lastErr)
}

// try sends the call to RM idx, following standby redirects. It returns the
// index of the RM that answered (when known), and classifies the result.
func (c *Client) try(ctx context.Context, idx int, cl *call) (*reply, int, outcome, error) {
	target := c.endpoint(idx, cl)
	landed := idx
	for hop := 0; ; hop++ {
		rctx, cancel := context.WithTimeout(ctx, c.opts.RequestTimeout)
		req := c.http.R().SetContext(rctx)
		if cl.body != nil {
			req.SetHeader("Content-Type", "application/json").SetBody(cl.body)
		}
		resp, err := req.Execute(cl.method, target.String())
		cancel()
		if err != nil {
			terr := fmt.Errorf("rm: %s %s: %w: %w", cl.op, redact(target), ErrUnavailable, err)
			if ctx.Err() != nil {
				return nil, landed, outRetry, fmt.Errorf("rm: %s: %w", cl.op, ctx.Err())
			}
			if neverArrived(err) {
				return nil, landed, outNextRM, terr
			}
			if cl.idempotent {
				// A reset or timeout: another RM may be active by now.
				return nil, landed, outNextRM, terr
			}
			return nil, landed, outRetry, terr
		}
		status := resp.StatusCode()
		body := resp.Body()
		if isRedirect(status) {
			loc := resp.Header().Get("Location")
			if loc == "" {
				return nil, landed, outNextRM, fmt.Errorf("rm: %s %s: %w: HTTP %d without Location: %s", cl.op, redact(target), ErrStandby, status, summarizeBody(body))
			}
			if hop >= c.opts.MaxRedirects {
				return nil, landed, outNextRM, fmt.Errorf("rm: %s: %w: more than %d redirects (last to %s)", cl.op, ErrStandby, c.opts.MaxRedirects, loc)
			}
			next, err := target.Parse(loc)
			if err != nil {
				return nil, landed, outNextRM, fmt.Errorf("rm: %s: %w: bad redirect Location %q", cl.op, ErrUnexpectedResponse, loc)
			}
			mergeQuery(next, target.Query())
			c.log.WithFields(logrus.Fields{"op": cl.op, "from": target.Host, "to": next.Host}).Debug("following standby redirect")
			if i := c.indexOfHost(next); i >= 0 {
				landed = i
			}
			target = next
			continue
		}
		if isStandbyAnswer(status, body) {
			return nil, landed, outNextRM, fmt.Errorf("rm: %s %s: %w: HTTP %d: %s", cl.op, redact(target), ErrStandby, status, summarizeBody(body))
		}
		if status >= 500 {
			return nil, landed, outRetry, newRemoteError(cl.op, status, redact(target), body)
		}
		return &reply{status: status, body: body, header: resp.Header(), url: redact(target)}, landed, outDone, nil
	}
}

func (c *Client) endpoint(idx int, cl *call) *url.URL {
	u := *c.bases[idx]
	u.Path = u.Path + apiPrefix + cl.path
	q := url.Values{}
	for k, v := range cl.query {
		q[k] = append([]string(nil), v...)
	}
	q.Set("user.name", c.opts.User)
	u.RawQuery = q.Encode()
	return &u
}

func (c *Client) indexOfHost(u *url.URL) int {
	for i, b := range c.bases {
		if strings.EqualFold(b.Host, u.Host) && b.Scheme == u.Scheme {
			return i
		}
	}
	return -1
}

// redact drops the query (user.name and filters) from a URL for messages.
func redact(u *url.URL) string {
	v := *u
	v.RawQuery = ""
	return v.String()
}

// mergeQuery adds to u every parameter of q it lacks: the standby's redirect
// may or may not carry the original query string.
func mergeQuery(u *url.URL, q url.Values) {
	have := u.Query()
	changed := false
	for k, v := range q {
		if _, ok := have[k]; !ok {
			have[k] = v
			changed = true
		}
	}
	if changed {
		u.RawQuery = have.Encode()
	}
}

func isRedirect(status int) bool {
	switch status {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

// isStandbyAnswer recognises a standby that does not redirect: a 503 that is
// not a RemoteException (3.4 maps unknown exceptions to 503 with one), or the
// standby's "This is standby RM" text.
func isStandbyAnswer(status int, body []byte) bool {
	if status >= 200 && status < 300 && isJSON(body) {
		return false
	}
	if status == http.StatusServiceUnavailable && !isJSON(body) {
		return true
	}
	return !isJSON(body) && bytes.Contains(bytes.ToLower(body), []byte("standby rm"))
}

// neverArrived reports whether a transport error happened before the request
// could reach a server: dial failures and name resolution.
func neverArrived(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// restyLogger routes resty's own messages to the injected entry at debug level.
type restyLogger struct{ e *logrus.Entry }

func (l restyLogger) Errorf(format string, v ...interface{}) { l.e.Debugf("resty: "+format, v...) }
func (l restyLogger) Warnf(format string, v ...interface{})  { l.e.Debugf("resty: "+format, v...) }
func (l restyLogger) Debugf(format string, v ...interface{}) { l.e.Debugf("resty: "+format, v...) }
