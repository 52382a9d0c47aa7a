package wecom

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/tidewatch/tidewatch/notify/channel"
)

// Config of a WeChat Work (WeCom) group robot.
type Config struct {
	// URL is the robot's webhook address as WeChat Work shows it,
	// https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…; the key makes
	// it a secret.
	URL channel.Secret `yaml:"url"`
	// Mentions are WeChat Work user ids to @ in every message of this channel.
	Mentions []string `yaml:"mentions"`
	// Template replaces the markdown template "wecom.markdown" (see
	// default.tmpl); it may also {{define}} the other templates there.
	Template string `yaml:"template"`
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
	if u.Query().Get("key") == "" {
		return errors.New("url: has no key= parameter (copy the robot's webhook address from WeChat Work)")
	}
	for i, m := range c.Mentions {
		if m == "" {
			return fmt.Errorf("mentions[%d]: must not be empty", i)
		}
	}
	if _, err := channel.ParseTemplate(defaultTemplate, mainTemplate, c.Template); err != nil {
		return fmt.Errorf("template: %w", err)
	}
	return nil
}
