// Package wecom delivers notifications to a WeChat Work (企业微信) group
// robot as markdown messages.
package wecom

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/tidewatch/tidewatch/notify/alert"
	"github.com/tidewatch/tidewatch/notify/channel"
)

//go:embed default.tmpl
var defaultTemplate string

const mainTemplate = "wecom.markdown"

// MaxContentBytes is WeChat Work's limit on a markdown message's content.
const MaxContentBytes = 4096

// Error codes of the robot API that a later attempt may not meet.
var retryableCodes = map[int]bool{
	-1:    true, // system busy
	45009: true, // api freq out of limit (20 messages a minute per robot)
	45033: true, // api concurrent out of limit
}

// Channel posts to one group robot.
type Channel struct {
	cfg    Config
	tmpl   *channel.Template
	client *http.Client
}

// New returns the channel; client nil means http.DefaultClient.
func New(cfg Config, client *http.Client) (*Channel, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t, err := channel.ParseTemplate(defaultTemplate, mainTemplate, cfg.Template)
	if err != nil {
		return nil, err
	}
	return &Channel{cfg: cfg, tmpl: t, client: client}, nil
}

type markdownMessage struct {
	MsgType  string `json:"msgtype"`
	Markdown struct {
		Content string `json:"content"`
	} `json:"markdown"`
}

type answer struct {
	ErrCode int    `json:"errcode"`
	ErrMsg  string `json:"errmsg"`
}

// Render is the markdown content of a message, cut to the robot's limit.
func (c *Channel) Render(m *alert.Message) (string, error) {
	content, err := c.tmpl.Execute(mainTemplate, m)
	if err != nil {
		return "", err
	}
	content = strings.TrimSpace(content)
	var mentions strings.Builder
	for _, u := range c.cfg.Mentions {
		fmt.Fprintf(&mentions, "<@%s>", u)
	}
	if mentions.Len() > 0 {
		return channel.TruncateBytes(MaxContentBytes-mentions.Len()-1, content) + "\n" + mentions.String(), nil
	}
	return channel.TruncateBytes(MaxContentBytes, content), nil
}

// Send posts the message as markdown.
func (c *Channel) Send(ctx context.Context, m *alert.Message) error {
	content, err := c.Render(m)
	if err != nil {
		return channel.Permanent("wecom: template", err)
	}
	var msg markdownMessage
	msg.MsgType = "markdown"
	msg.Markdown.Content = content
	body, err := json.Marshal(msg)
	if err != nil {
		return channel.Permanent("wecom", err)
	}
	secrets := channel.URLSecrets(c.cfg.URL.Value())
	resp, err := channel.Do(ctx, c.client, channel.Request{Channel: "wecom", Method: http.MethodPost, URL: c.cfg.URL.Value(),
		Header: http.Header{"Content-Type": {"application/json"}}, Body: body, Secrets: secrets})
	if err != nil {
		return err
	}
	op := "wecom: POST " + channel.RedactURL(c.cfg.URL.Value())
	var a answer
	if err := json.Unmarshal(resp.Body, &a); err != nil {
		return channel.Temporary(op, fmt.Errorf("answer is not the robot's JSON: %s", channel.Snippet(resp.Body, secrets...)))
	}
	if a.ErrCode != 0 {
		return &channel.Error{Op: op, Retryable: retryableCodes[a.ErrCode],
			Err: fmt.Errorf("errcode %d: %s", a.ErrCode, channel.Scrub(a.ErrMsg, secrets...))}
	}
	return nil
}
