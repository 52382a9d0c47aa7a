package notify

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tidewatch/tidewatch/notify/alert"
	"github.com/tidewatch/tidewatch/notify/alertmanager"
	"github.com/tidewatch/tidewatch/notify/email"
	"github.com/tidewatch/tidewatch/notify/sms"
	"github.com/tidewatch/tidewatch/notify/webhook"
	"github.com/tidewatch/tidewatch/notify/wecom"
)

// Config is the notify section of the daemon's configuration: who receives
// which alerts, how they are grouped and timed, what inhibits what, and how
// the outbox retries. Its zero value is valid: alerts are recorded and
// shown by the REST API, and sent nowhere.
type Config struct {
	// ExternalURL is the daemon's address as people reach it, for links in
	// messages (e.g. http://tidewatch.example.com:8080).
	ExternalURL string `yaml:"external_url"`
	// ResolveTimeout: an alert raised without endsAt resolves by itself
	// when it has not been raised again for this long. 0 (the default)
	// means never: such alerts fire until they are resolved, as the
	// monitor does when its rule stops matching. Set it for producers that
	// raise while a condition holds and never resolve, as Prometheus does.
	ResolveTimeout *time.Duration `yaml:"resolve_timeout"`
	// Route is the root of the routing tree; it matches every alert.
	Route Route `yaml:"route"`
	// Receivers are the named lists of channels that routes point at.
	Receivers []Receiver `yaml:"receivers"`
	// Inhibit says which alerts keep others quiet.
	Inhibit Inhibit `yaml:"inhibit"`
	// Outbox tunes delivery.
	Outbox Outbox `yaml:"outbox"`
}

// Route sends the alerts it matches to a receiver, grouped and timed as it
// says. A child route inherits what it does not set from its parent. Alerts
// go to the first matching child (and on to the next ones while a matching
// child has continue: true), or stay with the parent if no child matches.
type Route struct {
	// Receiver names a receiver; on the root, empty means none (alerts are
	// recorded only).
	Receiver string `yaml:"receiver"`
	// Levels, Jobs and Events match those labels (any of the listed values);
	// Matchers are label matchers like tm=~"tm-1.*". All given must match.
	Levels   []string `yaml:"levels"`
	Jobs     []string `yaml:"jobs"`
	Events   []string `yaml:"events"`
	Matchers []string `yaml:"matchers"`
	// GroupBy are the labels that make alerts one notification; ["..."]
	// groups by every label (one alert per notification). Default job, alertname.
	GroupBy []string `yaml:"group_by"`
	// GroupWait is how long a new group waits for more alerts before its
	// first notification (default 30s); GroupInterval how long a group
	// waits before notifying of changes (default 5m); RepeatInterval how
	// long before an unchanged group is notified again (default 4h).
	GroupWait      *time.Duration `yaml:"group_wait"`
	GroupInterval  *time.Duration `yaml:"group_interval"`
	RepeatInterval *time.Duration `yaml:"repeat_interval"`
	// Continue lets the siblings after this route match too.
	Continue bool    `yaml:"continue"`
	Routes   []Route `yaml:"routes"`
}

// Receiver is a named list of channels.
type Receiver struct {
	Name     string          `yaml:"name"`
	Channels []ChannelConfig `yaml:"channels"`
}

// ChannelConfig is one channel of a receiver: exactly one of the channel
// types, with the settings every channel has.
type ChannelConfig struct {
	// Name identifies the channel within its receiver (and, with the
	// receiver's name, in the outbox and the idempotency keys): keep it
	// stable. Default: the type, or type-N when a receiver has several of a type.
	Name string `yaml:"name"`
	// SendResolved: also notify when alerts resolve. Default true.
	SendResolved *bool `yaml:"send_resolved"`
	// RateLimit bounds this channel's messages; more wait in the outbox.
	RateLimit RateLimit `yaml:"rate_limit"`

	WeCom        *wecom.Config        `yaml:"wecom"`
	SMS          *sms.Config          `yaml:"sms"`
	Email        *email.Config        `yaml:"email"`
	Webhook      *webhook.Config      `yaml:"webhook"`
	Alertmanager *alertmanager.Config `yaml:"alertmanager"`
}

// RateLimit allows Count messages per Per, in bursts of up to Count.
// Zero is the channel type's default: 20 a minute for WeChat Work (the
// robot's own limit), none for the others.
type RateLimit struct {
	Count int           `yaml:"count"`
	Per   time.Duration `yaml:"per"`
}

// Inhibit configures inhibition: while a source alert fires, the target
// alerts it inhibits are recorded but not notified.
type Inhibit struct {
	// Family: a FATAL alert inhibits the WARN and INFO alerts of the same
	// job and family (the event name without _TOO_HIGH, _HIGH or _LOW).
	// Default true.
	Family *bool `yaml:"family"`
	// RestartEvents fire while a job restarts; one of them inhibits every
	// other alert of the job (they are symptoms). Default [JOB_RESTARTING];
	// [] turns this off.
	RestartEvents []string `yaml:"restart_events"`
	// Rules are further inhibition rules in Alertmanager's form.
	Rules []InhibitRule `yaml:"rules"`
}

// InhibitRule: a firing alert matching SourceMatchers inhibits the alerts
// matching TargetMatchers that have the same values of the Equal labels. An
// alert does not inhibit itself.
type InhibitRule struct {
	SourceMatchers []string `yaml:"source_matchers"`
	TargetMatchers []string `yaml:"target_matchers"`
	Equal          []string `yaml:"equal"`
}

// Outbox tunes delivery from the durable outbox.
type Outbox struct {
	// Workers deliver concurrently (default 4).
	Workers int `yaml:"workers"`
	// SendTimeout bounds one delivery attempt (default 10s).
	SendTimeout time.Duration `yaml:"send_timeout"`
	// MinBackoff and MaxBackoff bound the wait before a retry, which
	// doubles per attempt with random jitter (default 1s and 5m).
	MinBackoff time.Duration `yaml:"min_backoff"`
	MaxBackoff time.Duration `yaml:"max_backoff"`
	// MaxAge: a notification not delivered this long after it was queued is
	// given up (default 24h).
	MaxAge time.Duration `yaml:"max_age"`
	// MaxAttempts gives up after that many attempts; 0 means no limit but MaxAge.
	MaxAttempts int `yaml:"max_attempts"`
}

// Defaults of the keys that are not set.
const (
	DefaultGroupWait      = 30 * time.Second
	DefaultGroupInterval  = 5 * time.Minute
	DefaultRepeatInterval = 4 * time.Hour
	DefaultResolveTimeout = 0
	// RestartEvent is the default restart event.
	RestartEvent = "JOB_RESTARTING"
)

// DefaultGroupBy is the root route's default grouping.
var DefaultGroupBy = []string{alert.LabelJob, alert.LabelEvent}

// withDefaults returns the config with every unset key at its default.
func (c Config) withDefaults() Config {
	dur := func(p **time.Duration, d time.Duration) {
		if *p == nil {
			*p = &d
		}
	}
	dur(&c.ResolveTimeout, DefaultResolveTimeout)
	dur(&c.Route.GroupWait, DefaultGroupWait)
	dur(&c.Route.GroupInterval, DefaultGroupInterval)
	dur(&c.Route.RepeatInterval, DefaultRepeatInterval)
	if c.Route.GroupBy == nil {
		c.Route.GroupBy = DefaultGroupBy
	}
	if c.Inhibit.Family == nil {
		t := true
		c.Inhibit.Family = &t
	}
	if c.Inhibit.RestartEvents == nil {
		c.Inhibit.RestartEvents = []string{RestartEvent}
	}
	o := &c.Outbox
	if o.Workers == 0 {
		o.Workers = 4
	}
	if o.SendTimeout == 0 {
		o.SendTimeout = 10 * time.Second
	}
	if o.MinBackoff == 0 {
		o.MinBackoff = time.Second
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 5 * time.Minute
	}
	if o.MaxAge == 0 {
		o.MaxAge = 24 * time.Hour
	}
	return c
}

// ParseConfig reads a notify section (the YAML under the daemon config's
// notify: key). Unknown keys and values of the wrong type are errors that
// name the key and line; the result is validated.
func ParseConfig(data []byte) (Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("notify: %s", cleanYAMLError(err))
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// cleanYAMLError makes yaml.v3's messages name keys, not Go types.
func cleanYAMLError(err error) string {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err.Error()
	}
	msgs := make([]string, 0, len(te.Errors))
	for _, m := range te.Errors {
		if i := strings.Index(m, " not found in type "); i >= 0 {
			m = strings.Replace(m[:i], "field ", "unknown key ", 1)
		}
		if i := strings.Index(m, " into "); i >= 0 {
			m = m[:i] + " into " + yamlTypeName(m[i+len(" into "):])
		}
		msgs = append(msgs, m)
	}
	return strings.Join(msgs, "; ")
}

// yamlTypeName names a Go type the way a config's author thinks of it.
func yamlTypeName(t string) string {
	switch {
	case t == "time.Duration":
		return "a duration (like 5s)"
	case t == "int":
		return "an integer"
	case t == "bool":
		return "true or false"
	case t == "string" || strings.HasSuffix(t, ".Secret"):
		return "a string"
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["), strings.Contains(t, "."):
		return "a mapping"
	}
	return t
}

var nameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// Validate names the first key (as notify.…) whose value cannot work.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.ExternalURL != "" {
		u, err := url.Parse(c.ExternalURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("notify.external_url: %q is not an http:// or https:// URL", c.ExternalURL)
		}
	}
	if *c.ResolveTimeout < 0 {
		return fmt.Errorf("notify.resolve_timeout: must not be negative, got %s", *c.ResolveTimeout)
	}
	receivers := map[string]bool{}
	for i, r := range c.Receivers {
		key := fmt.Sprintf("notify.receivers[%d]", i)
		if !nameRe.MatchString(r.Name) {
			return fmt.Errorf("%s.name: %q must be 1-64 letters, digits, '.', '_' or '-'", key, r.Name)
		}
		if receivers[r.Name] {
			return fmt.Errorf("%s.name: receiver %q is defined twice", key, r.Name)
		}
		receivers[r.Name] = true
		names := map[string]bool{}
		for j, cc := range r.Channels {
			ckey := fmt.Sprintf("%s.channels[%d]", key, j)
			typ, err := cc.validate(ckey)
			if err != nil {
				return err
			}
			name := channelName(r.Channels, j, typ)
			if names[name] {
				return fmt.Errorf("%s.name: channel %q is defined twice in receiver %s", ckey, name, r.Name)
			}
			names[name] = true
		}
	}
	if c.Route.Receiver == "" && len(c.Route.Routes) == 0 && len(c.Receivers) > 0 {
		return errors.New("notify.route.receiver: must name a receiver (receivers are defined but no route uses them)")
	}
	if len(c.Route.Levels)+len(c.Route.Jobs)+len(c.Route.Events)+len(c.Route.Matchers) > 0 {
		return errors.New("notify.route: the root route matches every alert; put levels, jobs, events and matchers on its routes")
	}
	if c.Route.Continue {
		return errors.New("notify.route.continue: the root route has no siblings")
	}
	if err := c.Route.validate("notify.route", receivers, true); err != nil {
		return err
	}
	if _, err := compileInhibit(c.Inhibit); err != nil {
		return err
	}
	return c.Outbox.validate()
}

func (r Route) validate(key string, receivers map[string]bool, root bool) error {
	if r.Receiver != "" && !receivers[r.Receiver] {
		return fmt.Errorf("%s.receiver: no receiver is named %q", key, r.Receiver)
	}
	for i, l := range r.Levels {
		if _, err := alert.ParseLevel(l); err != nil {
			return fmt.Errorf("%s.levels[%d]: %q is not FATAL, ERROR, WARN or INFO", key, i, l)
		}
	}
	for i, m := range r.Matchers {
		if _, err := ParseMatchers(m); err != nil {
			return fmt.Errorf("%s.matchers[%d]: %v", key, i, err)
		}
	}
	if err := validateGroupBy(key+".group_by", r.GroupBy); err != nil {
		return err
	}
	if r.GroupWait != nil && *r.GroupWait < 0 {
		return fmt.Errorf("%s.group_wait: must not be negative, got %s", key, *r.GroupWait)
	}
	if r.GroupInterval != nil && *r.GroupInterval <= 0 {
		return fmt.Errorf("%s.group_interval: must be positive, got %s", key, *r.GroupInterval)
	}
	if r.RepeatInterval != nil && *r.RepeatInterval <= 0 {
		return fmt.Errorf("%s.repeat_interval: must be positive, got %s", key, *r.RepeatInterval)
	}
	for i, sub := range r.Routes {
		if err := sub.validate(fmt.Sprintf("%s.routes[%d]", key, i), receivers, false); err != nil {
			return err
		}
	}
	return nil
}

func validateGroupBy(key string, gb []string) error {
	seen := map[string]bool{}
	for i, l := range gb {
		if l == "..." {
			if len(gb) != 1 {
				return fmt.Errorf("%s: \"...\" (every label) must be alone", key)
			}
			continue
		}
		if !alert.ValidLabelName(l) {
			return fmt.Errorf("%s[%d]: %q is not a label name", key, i, l)
		}
		if seen[l] {
			return fmt.Errorf("%s[%d]: %s is listed twice", key, i, l)
		}
		seen[l] = true
	}
	return nil
}

// channelTypes are the channel types in the order of ChannelConfig's fields.
var channelTypes = []string{"wecom", "sms", "email", "webhook", "alertmanager"}

// typ returns the one channel type that is set.
func (cc ChannelConfig) types() []string {
	var ts []string
	for _, t := range []struct {
		name string
		set  bool
	}{{"wecom", cc.WeCom != nil}, {"sms", cc.SMS != nil}, {"email", cc.Email != nil}, {"webhook", cc.Webhook != nil}, {"alertmanager", cc.Alertmanager != nil}} {
		if t.set {
			ts = append(ts, t.name)
		}
	}
	return ts
}

func (cc ChannelConfig) validate(key string) (string, error) {
	ts := cc.types()
	if len(ts) != 1 {
		return "", fmt.Errorf("%s: must set exactly one of %s, got %d", key, strings.Join(channelTypes, ", "), len(ts))
	}
	typ := ts[0]
	if cc.Name != "" && !nameRe.MatchString(cc.Name) {
		return "", fmt.Errorf("%s.name: %q must be 1-64 letters, digits, '.', '_' or '-'", key, cc.Name)
	}
	if cc.RateLimit.Count < 0 {
		return "", fmt.Errorf("%s.rate_limit.count: must not be negative, got %d", key, cc.RateLimit.Count)
	}
	if cc.RateLimit.Count > 0 && cc.RateLimit.Per <= 0 {
		return "", fmt.Errorf("%s.rate_limit.per: must be positive when rate_limit.count is set, got %s", key, cc.RateLimit.Per)
	}
	var err error
	switch typ {
	case "wecom":
		err = cc.WeCom.Validate()
	case "sms":
		err = cc.SMS.Validate()
	case "email":
		err = cc.Email.Validate()
	case "webhook":
		err = cc.Webhook.Validate()
	case "alertmanager":
		err = cc.Alertmanager.Validate()
	}
	if err != nil {
		return "", fmt.Errorf("%s.%s.%w", key, typ, err)
	}
	return typ, nil
}

// channelName is the name of a receiver's j-th channel.
func channelName(ccs []ChannelConfig, j int, typ string) string {
	if ccs[j].Name != "" {
		return ccs[j].Name
	}
	n, idx := 0, 0
	for i, cc := range ccs {
		if ts := cc.types(); len(ts) == 1 && ts[0] == typ && cc.Name == "" {
			n++
			if i == j {
				idx = n
			}
		}
	}
	if n == 1 {
		return typ
	}
	return fmt.Sprintf("%s-%d", typ, idx)
}

func (o Outbox) validate() error {
	switch {
	case o.Workers < 1 || o.Workers > 256:
		return fmt.Errorf("notify.outbox.workers: must be from 1 to 256, got %d", o.Workers)
	case o.SendTimeout <= 0:
		return fmt.Errorf("notify.outbox.send_timeout: must be positive, got %s", o.SendTimeout)
	case o.MinBackoff <= 0:
		return fmt.Errorf("notify.outbox.min_backoff: must be positive, got %s", o.MinBackoff)
	case o.MaxBackoff < o.MinBackoff:
		return fmt.Errorf("notify.outbox.max_backoff: must be at least notify.outbox.min_backoff (%s), got %s", o.MinBackoff, o.MaxBackoff)
	case o.MaxAge <= 0:
		return fmt.Errorf("notify.outbox.max_age: must be positive, got %s", o.MaxAge)
	case o.MaxAttempts < 0:
		return fmt.Errorf("notify.outbox.max_attempts: must not be negative, got %d", o.MaxAttempts)
	}
	return nil
}
