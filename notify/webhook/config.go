package webhook

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/tidewatch/tidewatch/notify/channel"
)

// Config of a generic webhook.
type Config struct {
	// URL receives the POST. It is treated as a secret: tokens often live
	// in webhook paths.
	URL channel.Secret `yaml:"url"`
	// Secret, when set, signs every body: the header X-Tidewatch-Signature
	// is "sha256=" and the hex HMAC-SHA256 of the body under this key.
	Secret channel.Secret `yaml:"secret"`
	// MaxAlerts caps the alerts in one body (0: all); the rest are counted
	// in truncatedAlerts.
	MaxAlerts int `yaml:"max_alerts"`
}

// Validate names the key (relative to the channel) that cannot work.
func (c Config) Validate() error {
	if c.URL == "" {
		return errors.New("url: must be set")
	}
	if err := checkURL(c.URL.Value()); err != nil {
		return fmt.Errorf("url: %w", err)
	}
	if c.MaxAlerts < 0 {
		return fmt.Errorf("max_alerts: must not be negative, got %d", c.MaxAlerts)
	}
	return nil
}

// checkURL accepts absolute http(s) URLs; its errors never quote the URL.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("not a valid URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("must be an http:// or https:// URL")
	}
	if u.Host == "" {
		return errors.New("has no host")
	}
	return nil
}
