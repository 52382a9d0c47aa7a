package email

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/tidewatch/tidewatch/notify/alert"
	"github.com/tidewatch/tidewatch/notify/channel"
)

func testConfig(s *smtpServer) Config {
	c := Config{Smarthost: s.addr(), From: "Tidewatch <alerts@example.com>", To: []string{"ops@example.com", "Li Si <lisi@example.com>"},
		AuthUsername: s.user, AuthPassword: channel.Secret(s.pass)}
	c.TLS.CAFile = s.caFile
	return c
}

func testMessage() *alert.Message {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	a := alert.New("clicks", "TASK_MANAGER_HEAP_MEM_LOAD_TOO_HIGH", alert.LevelFatal, alert.Labels{"tm": "tm-3"})
	a.StartsAt = start
	a.Annotations = alert.Labels{"summary": "堆内存 97%, migration to Pebble started"}
	return &alert.Message{IdempotencyKey: "4f1c9a0b2d3e4f5a6b7c8d9e0f1a2b3c", Receiver: "ops", Status: "firing",
		CommonLabels: a.Labels, ExternalURL: "http://tw.example:8080", Alerts: alert.Alerts{alert.NewMessageAlert(a, start)}}
}

func TestSendOverSTARTTLS(t *testing.T) {
	s := newSMTPServer(t, true)
	c, err := New(testConfig(s))
	if err != nil {
		t.Fatal(err)
	}
	c.now = func() time.Time { return time.Date(2026, 3, 1, 12, 1, 0, 0, time.UTC) }
	if err := c.Send(context.Background(), testMessage()); err != nil {
		t.Fatal(err)
	}
	if len(s.mails) != 1 {
		t.Fatalf("%d mails", len(s.mails))
	}
	got := s.mails[0]
	if !got.tls || !got.authed || got.from != "<alerts@example.com>" || strings.Join(got.to, ",") != "<ops@example.com>,<lisi@example.com>" {
		t.Fatalf("envelope %+v", got)
	}
	if strings.Join(s.commands, " ") != "EHLO STARTTLS EHLO AUTH MAIL RCPT RCPT DATA QUIT" {
		t.Errorf("dialogue %v", s.commands)
	}
	msg, err := mail.ReadMessage(strings.NewReader(got.data))
	if err != nil {
		t.Fatal(err)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil || subject != "[FIRING:1] TASK_MANAGER_HEAP_MEM_LOAD_TOO_HIGH job clicks" {
		t.Errorf("subject %q, %v", subject, err)
	}
	for k, want := range map[string]string{
		"Message-Id": "<4f1c9a0b2d3e4f5a6b7c8d9e0f1a2b3c@tidewatch>", "From": "Tidewatch <alerts@example.com>",
		"To": "ops@example.com, Li Si <lisi@example.com>", "Date": "Sun, 01 Mar 2026 12:01:00 +0000",
		"Content-Type": "text/plain; charset=utf-8", "Content-Transfer-Encoding": "quoted-printable",
	} {
		if got := msg.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	body, _ := io.ReadAll(quotedprintable.NewReader(msg.Body))
	for _, want := range []string{"1 firing, 0 resolved", "FATAL TASK_MANAGER_HEAP_MEM_LOAD_TOO_HIGH", "job:    clicks", "tm: tm-3",
		"summary: 堆内存 97%, migration to Pebble started", "since:  2026-03-01 12:00:00 +0000", "Alerts: http://tw.example:8080/api/v1/alerts?job=clicks"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("body lacks %q:\n%s", want, body)
		}
	}
}

func TestNoSTARTTLSNoMail(t *testing.T) {
	s := newSMTPServer(t, false)
	c, _ := New(testConfig(s))
	err := c.Send(context.Background(), testMessage())
	if retry, _ := channel.Retryable(err); err == nil || retry || !strings.Contains(err.Error(), "does not offer STARTTLS") {
		t.Fatalf("server without STARTTLS: %v", err)
	}
	// Even if configuration checks were bypassed, PLAIN never goes in the clear.
	cfg := testConfig(s)
	cfg.RequireTLS = new(bool)
	c.cfg = cfg
	err = c.Send(context.Background(), testMessage())
	if err == nil || !strings.Contains(err.Error(), "refusing AUTH PLAIN without TLS") {
		t.Fatalf("auth without TLS: %v", err)
	}
	for _, v := range s.commands {
		if v == "AUTH" || v == "MAIL" {
			t.Fatalf("the client sent %s without TLS: %v", v, s.commands)
		}
	}
	// Without a login, require_tls: false sends in the clear.
	cfg.AuthUsername, cfg.AuthPassword = "", ""
	c, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Send(context.Background(), testMessage()); err != nil || len(s.mails) != 1 || s.mails[0].tls {
		t.Fatalf("plain delivery: %v, %+v", err, s.mails)
	}
}

func TestSMTPErrors(t *testing.T) {
	s := newSMTPServer(t, true)
	cfg := testConfig(s)
	for _, tc := range []struct {
		reply     string
		code      int
		retryable bool
	}{{"450 4.2.0 mailbox busy", 450, true}, {"550 5.1.1 no such user", 550, false}} {
		s.rcptReply = tc.reply
		c, _ := New(cfg)
		err := c.Send(context.Background(), testMessage())
		var ce *channel.Error
		if !errors.As(err, &ce) || ce.StatusCode != tc.code || ce.Retryable != tc.retryable {
			t.Errorf("%s: %v", tc.reply, err)
		}
	}
	s.rcptReply = ""
	cfg.AuthPassword = "wrong-pa55word-ABC"
	c, _ := New(cfg)
	err := c.Send(context.Background(), testMessage())
	var ce *channel.Error
	if !errors.As(err, &ce) || ce.StatusCode != 535 || ce.Retryable {
		t.Fatalf("bad password: %v", err)
	}
	b64 := base64.StdEncoding.EncodeToString([]byte("\x00" + s.user + "\x00wrong-pa55word-ABC"))
	if strings.Contains(err.Error(), "wrong-pa55word-ABC") || strings.Contains(err.Error(), b64) {
		t.Errorf("error quotes the password: %v", err)
	}
	// An untrusted certificate fails the handshake.
	cfg = testConfig(s)
	cfg.TLS.CAFile = ""
	c, _ = New(cfg)
	if err := c.Send(context.Background(), testMessage()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("untrusted certificate: %v", err)
	}
	// Nobody listening.
	cfg.Smarthost = "127.0.0.1:1"
	c, _ = New(cfg)
	if err := c.Send(context.Background(), testMessage()); err == nil {
		t.Error("sent to nobody")
	} else if retry, _ := channel.Retryable(err); !retry {
		t.Errorf("connection refused is retried: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{Smarthost: "smtp.example.com:587", From: "a@example.com", To: []string{"b@example.com"}}
	for _, tc := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.Smarthost = "" }, "smarthost: must be set"},
		{func(c *Config) { c.Smarthost = "smtp.example.com" }, "smarthost: \"smtp.example.com\" is not host:port"},
		{func(c *Config) { c.From = "not an address" }, "from: \"not an address\" is not an e-mail address"},
		{func(c *Config) { c.To = nil }, "to: must list at least one address"},
		{func(c *Config) { c.To = []string{"b@example.com", "@"} }, "to[1]:"},
		{func(c *Config) { c.AuthUsername = "u" }, "auth_password: auth_username and auth_password go together"},
		{func(c *Config) { c.AuthUsername, c.AuthPassword, c.RequireTLS = "u", "s3cret-pw", new(bool) }, "require_tls: must be true"},
		{func(c *Config) { c.TLS.CAFile = "/nonexistent/ca.pem" }, "tls.ca_file:"},
		{func(c *Config) { c.Subject = "{{ if }}" }, "subject:"},
	} {
		c := good
		tc.edit(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "s3cret-pw") {
			t.Errorf("%v, want %q", err, tc.want)
		}
	}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
}
