// Package sms delivers notifications as text messages through Tencent Cloud
// SMS (API version 2021-01-11, action SendSms), signing each request with
// TC3-HMAC-SHA256. It needs no SDK: the request is one signed JSON POST.
package sms

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tidewatch/tidewatch/notify/alert"
	"github.com/tidewatch/tidewatch/notify/channel"
)

//go:embed default.tmpl
var defaultTemplate string

const paramsTemplate = "sms.params"

// The API this channel calls.
const (
	Service = "sms"
	Action  = "SendSms"
	Version = "2021-01-11"
)

// contentType is signed, so it must be exactly what is sent.
const contentType = "application/json; charset=utf-8"

// Channel sends through one SMS application.
type Channel struct {
	cfg    Config
	host   string
	params []*channel.Template // nil: the default's lines
	deflt  *channel.Template
	client *http.Client
	now    func() time.Time
}

// New returns the channel; client nil means http.DefaultClient.
func New(cfg Config, client *http.Client) (*Channel, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Endpoint == "" {
		cfg.Endpoint = DefaultEndpoint
	}
	u, _ := url.Parse(cfg.Endpoint) // checked by Validate
	c := &Channel{cfg: cfg, host: u.Host, client: client, now: time.Now}
	var err error
	if c.deflt, err = channel.ParseTemplate(defaultTemplate, paramsTemplate, ""); err != nil {
		return nil, err
	}
	for _, p := range cfg.TemplateParams {
		t, err := channel.ParseTemplate(defaultTemplate, paramsTemplate, p)
		if err != nil {
			return nil, err
		}
		c.params = append(c.params, t)
	}
	return c, nil
}

// Params are the template parameters of a message.
func (c *Channel) Params(m *alert.Message) ([]string, error) {
	if c.params == nil {
		s, err := c.deflt.Execute(paramsTemplate, m)
		if err != nil {
			return nil, err
		}
		return strings.Split(strings.TrimSpace(s), "\n"), nil
	}
	out := make([]string, len(c.params))
	for i, t := range c.params {
		s, err := t.Execute(paramsTemplate, m)
		if err != nil {
			return nil, fmt.Errorf("template_params[%d]: %w", i, err)
		}
		out[i] = strings.TrimSpace(s)
	}
	return out, nil
}

// sendSmsRequest is SendSms's request body.
type sendSmsRequest struct {
	PhoneNumberSet   []string `json:"PhoneNumberSet"`
	SmsSdkAppID      string   `json:"SmsSdkAppId"`
	SignName         string   `json:"SignName,omitempty"`
	TemplateID       string   `json:"TemplateId"`
	TemplateParamSet []string `json:"TemplateParamSet"`
	SessionContext   string   `json:"SessionContext,omitempty"`
}

// sendSmsResponse is SendSms's answer: a status per number, or an error.
type sendSmsResponse struct {
	Response struct {
		SendStatusSet []struct {
			SerialNo    string `json:"SerialNo"`
			PhoneNumber string `json:"PhoneNumber"`
			Fee         int    `json:"Fee"`
			Code        string `json:"Code"`
			Message     string `json:"Message"`
			IsoCode     string `json:"IsoCode"`
		} `json:"SendStatusSet"`
		Error *struct {
			Code    string `json:"Code"`
			Message string `json:"Message"`
		} `json:"Error"`
		RequestID string `json:"RequestId"`
	} `json:"Response"`
}

// retryableCode says whether an API error code (of the request or of one
// number) may clear by itself soon.
func retryableCode(code string) bool {
	return strings.HasPrefix(code, "InternalError") || strings.HasPrefix(code, "RequestLimitExceeded") ||
		code == "LimitExceeded.PhoneNumberThirtySecondLimit"
}

// Send sends the message to every number not reached by an earlier attempt.
// Numbers SendSms accepted are reported in a *channel.PartialError when
// others failed, so a retry does not text them twice.
func (c *Channel) Send(ctx context.Context, m *alert.Message) error {
	done := map[string]bool{}
	for _, p := range m.Done {
		done[p] = true
	}
	var numbers []string
	for _, p := range c.cfg.PhoneNumbers {
		if !done[p] {
			numbers = append(numbers, p)
		}
	}
	if len(numbers) == 0 {
		return nil
	}
	params, err := c.Params(m)
	if err != nil {
		return channel.Permanent("sms: template", err)
	}
	payload, err := json.Marshal(sendSmsRequest{PhoneNumberSet: numbers, SmsSdkAppID: c.cfg.SDKAppID,
		SignName: c.cfg.SignName, TemplateID: c.cfg.TemplateID, TemplateParamSet: params,
		SessionContext: m.IdempotencyKey})
	if err != nil {
		return channel.Permanent("sms", err)
	}
	ts := c.now().Unix()
	h := http.Header{}
	h.Set("Content-Type", contentType)
	h.Set("X-TC-Action", Action)
	h.Set("X-TC-Version", Version)
	h.Set("X-TC-Timestamp", strconv.FormatInt(ts, 10))
	h.Set("X-TC-Region", c.cfg.Region)
	h.Set("Authorization", authorization(c.cfg.SecretID.Value(), c.cfg.SecretKey.Value(), Service, ts,
		[]header{{"content-type", contentType}, {"host", c.host}, {"x-tc-action", Action}}, payload))
	secrets := []string{c.cfg.SecretID.Value(), c.cfg.SecretKey.Value()}
	resp, err := channel.Do(ctx, c.client, channel.Request{Channel: "sms", Method: http.MethodPost,
		URL: c.cfg.Endpoint, Header: h, Body: payload, Secrets: secrets})
	if err != nil {
		return err
	}
	op := "sms: SendSms " + channel.RedactURL(c.cfg.Endpoint)
	var r sendSmsResponse
	if err := json.Unmarshal(resp.Body, &r); err != nil {
		return channel.Temporary(op, fmt.Errorf("answer is not SendSms JSON: %s", channel.Snippet(resp.Body, secrets...)))
	}
	if e := r.Response.Error; e != nil {
		return &channel.Error{Op: op, Retryable: retryableCode(e.Code),
			Err: fmt.Errorf("%s: %s (request %s)", e.Code, channel.Scrub(e.Message, secrets...), r.Response.RequestID)}
	}
	var delivered, failed []string
	retry := false
	for _, s := range r.Response.SendStatusSet {
		if s.Code == "Ok" {
			delivered = append(delivered, s.PhoneNumber)
			continue
		}
		failed = append(failed, fmt.Sprintf("%s: %s %s", s.PhoneNumber, s.Code, channel.Scrub(s.Message, secrets...)))
		retry = retry || retryableCode(s.Code)
	}
	if len(delivered)+len(failed) < len(numbers) {
		// Numbers the answer does not mention: treat them as not sent.
		failed = append(failed, fmt.Sprintf("%d numbers missing from the answer", len(numbers)-len(delivered)-len(failed)))
		retry = true
	}
	if len(failed) == 0 {
		return nil
	}
	cause := &channel.Error{Op: op, Retryable: retry, Err: errors.New(strings.Join(failed, "; "))}
	if len(delivered) == 0 {
		return cause
	}
	return &channel.PartialError{Delivered: delivered, Err: cause}
}
