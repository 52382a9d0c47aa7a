package notify

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"time"

	"github.com/tidewatch/tidewatch/notify/alert"
	"github.com/tidewatch/tidewatch/notify/alertmanager"
	"github.com/tidewatch/tidewatch/notify/channel"
	"github.com/tidewatch/tidewatch/notify/email"
	"github.com/tidewatch/tidewatch/notify/sms"
	"github.com/tidewatch/tidewatch/notify/webhook"
	"github.com/tidewatch/tidewatch/notify/wecom"
)

// Channel delivers messages somewhere. Send must be safe for concurrent use,
// must return when ctx ends, and should classify its errors with
// channel.Error (retryable or not) and report partial success with
// channel.PartialError. Errors must not contain secrets.
type Channel interface {
	Send(ctx context.Context, m *alert.Message) error
}

var (
	_ Channel = (*wecom.Channel)(nil)
	_ Channel = (*sms.Channel)(nil)
	_ Channel = (*email.Channel)(nil)
	_ Channel = (*webhook.Channel)(nil)
	_ Channel = (*alertmanager.Channel)(nil)
)

// factories build a channel of each type from its configuration: the one
// place a new channel type is registered (with a field in ChannelConfig).
var factories = map[string]func(cc ChannelConfig, client *http.Client) (Channel, any, error){
	"wecom": func(cc ChannelConfig, client *http.Client) (Channel, any, error) {
		c, err := wecom.New(*cc.WeCom, client)
		return c, *cc.WeCom, err
	},
	"sms": func(cc ChannelConfig, client *http.Client) (Channel, any, error) {
		c, err := sms.New(*cc.SMS, client)
		return c, *cc.SMS, err
	},
	"email": func(cc ChannelConfig, _ *http.Client) (Channel, any, error) {
		c, err := email.New(*cc.Email)
		return c, *cc.Email, err
	},
	"webhook": func(cc ChannelConfig, client *http.Client) (Channel, any, error) {
		c, err := webhook.New(*cc.Webhook, client)
		return c, *cc.Webhook, err
	},
	"alertmanager": func(cc ChannelConfig, client *http.Client) (Channel, any, error) {
		c, err := alertmanager.New(*cc.Alertmanager, client)
		return c, *cc.Alertmanager, err
	},
}

// defaultRateLimits apply to channels whose rate_limit is not set.
var defaultRateLimits = map[string]RateLimit{
	// A WeChat Work group robot takes at most 20 messages a minute.
	"wecom": {Count: 20, Per: time.Minute},
}

// channelEntry is a built channel with what the outbox needs of it.
type channelEntry struct {
	name         string // receiver/name
	typ          string
	ch           Channel
	sendResolved bool
	limiter      *limiter
	secrets      []string
}

// buildChannels builds every configured channel. Channels in override
// replace the built ones of the same name (receiver/name), for tests.
func buildChannels(cfg Config, client *http.Client, override map[string]Channel) (map[string]*channelEntry, map[string]*receiverConf, error) {
	entries := map[string]*channelEntry{}
	receivers := map[string]*receiverConf{}
	for i, r := range cfg.Receivers {
		rc := &receiverConf{name: r.Name}
		for j, cc := range r.Channels {
			typ := cc.types()[0]
			name := r.Name + "/" + channelName(r.Channels, j, typ)
			ch, conf, err := factories[typ](cc, client)
			if err != nil {
				return nil, nil, fmt.Errorf("notify.receivers[%d].channels[%d].%s.%w", i, j, typ, err)
			}
			if o, ok := override[name]; ok {
				ch = o
			}
			e := &channelEntry{name: name, typ: typ, ch: ch, sendResolved: cc.SendResolved == nil || *cc.SendResolved,
				secrets: secretsOf(conf)}
			rl := cc.RateLimit
			if rl.Count == 0 {
				rl = defaultRateLimits[typ]
			}
			if rl.Count > 0 {
				e.limiter = newLimiter(rl.Count, rl.Per)
			}
			entries[name] = e
			rc.channels = append(rc.channels, channelConf{name: name, sendResolved: e.sendResolved})
		}
		receivers[r.Name] = rc
	}
	return entries, receivers, nil
}

var secretType = reflect.TypeOf(channel.Secret(""))

// secretsOf collects every channel.Secret in a channel's configuration (and
// the parts of those that are URLs), so that whatever a channel returns is
// scrubbed of them before it is logged or stored.
func secretsOf(conf any) []string {
	var out []string
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		switch {
		case v.Type() == secretType:
			if s := v.String(); s != "" {
				out = append(out, channel.URLSecrets(s)...)
			}
		case v.Kind() == reflect.Struct:
			for i := 0; i < v.NumField(); i++ {
				if v.Type().Field(i).IsExported() {
					walk(v.Field(i))
				}
			}
		case v.Kind() == reflect.Pointer && !v.IsNil():
			walk(v.Elem())
		}
	}
	walk(reflect.ValueOf(conf))
	return out
}
