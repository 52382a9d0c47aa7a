package alertmanager

import (
	"errors"
	"net/url"

	"github.com/tidewatch/tidewatch/notify/channel"
)

// Config of a forward to Prometheus Alertmanager.
type Config struct {
	// URL is Alertmanager's base address, e.g. http://alertmanager:9093 (a
	// path prefix is kept; user:password@ in it is sent as basic auth).
	URL channel.Secret `yaml:"url"`
	// BearerToken, when set, is sent as "Authorization: Bearer …".
	BearerToken channel.Secret `yaml:"bearer_token"`
}

// Validate names the key (relative to the channel) that cannot work.
func (c Config) Validate() error {
	if c.URL == "" {
		return errors.New("url: must be set")
	}
	u, err := url.Parse(c.URL.Value())
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("url: must be an http:// or https:// URL")
	}
	if u.RawQuery != "" {
		return errors.New("url: must not have a query")
	}
	return nil
}
