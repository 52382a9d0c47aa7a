// Package email delivers notifications by SMTP: STARTTLS (required unless
// configured otherwise), AUTH PLAIN only over TLS, one plain-text message per
// notification with its idempotency key as the Message-ID, so that mail
// clients fold a re-delivered message into the first.
package email

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/smtp"
	"net/textproto"
	"os"
	"strings"
	"time"

	"github.com/tidewatch/tidewatch/notify/alert"
	"github.com/tidewatch/tidewatch/notify/channel"
)

//go:embed default.tmpl
var defaultTemplate string

const (
	subjectTemplate = "email.subject"
	textTemplate    = "email.text"
)

// Channel sends to one list of recipients through one server.
type Channel struct {
	cfg     Config
	host    string
	tls     *tls.Config
	subject *channel.Template
	text    *channel.Template
	now     func() time.Time
	dialer  net.Dialer
}

// New returns the channel.
func New(cfg Config) (*Channel, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Hello == "" {
		cfg.Hello = "localhost"
	}
	host, _, _ := net.SplitHostPort(cfg.Smarthost)
	c := &Channel{cfg: cfg, host: host, now: time.Now}
	c.tls = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.TLS.InsecureSkipVerify}
	if cfg.TLS.ServerName != "" {
		c.tls.ServerName = cfg.TLS.ServerName
	}
	if cfg.TLS.CAFile != "" {
		pem, err := os.ReadFile(cfg.TLS.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca_file: no PEM certificates in %s", cfg.TLS.CAFile)
		}
		c.tls.RootCAs = pool
	}
	var err error
	if c.subject, err = channel.ParseTemplate(defaultTemplate, subjectTemplate, cfg.Subject); err != nil {
		return nil, fmt.Errorf("subject: %w", err)
	}
	if c.text, err = channel.ParseTemplate(defaultTemplate, textTemplate, cfg.Template); err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	return c, nil
}

// Render returns the whole message (headers and quoted-printable body).
func (c *Channel) Render(m *alert.Message) ([]byte, error) {
	subject, err := c.subject.Execute(subjectTemplate, m)
	if err != nil {
		return nil, fmt.Errorf("subject: %w", err)
	}
	text, err := c.text.Execute(textTemplate, m)
	if err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	var b bytes.Buffer
	hdr := func(k, v string) {
		// Header values come from templates and config: no line breaks.
		v = strings.Join(strings.FieldsFunc(v, func(r rune) bool { return r == '\r' || r == '\n' }), " ")
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	hdr("From", c.cfg.From)
	hdr("To", strings.Join(c.cfg.To, ", "))
	hdr("Subject", mime.QEncoding.Encode("utf-8", strings.Join(strings.Fields(subject), " ")))
	hdr("Date", c.now().Format(time.RFC1123Z))
	if m.IdempotencyKey != "" {
		hdr("Message-ID", "<"+m.IdempotencyKey+"@tidewatch>")
		hdr("X-Tidewatch-Idempotency-Key", m.IdempotencyKey)
	}
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", "text/plain; charset=utf-8")
	hdr("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	if _, err := qp.Write([]byte(strings.ReplaceAll(text, "\n", "\r\n"))); err != nil {
		return nil, err
	}
	if err := qp.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Send delivers the message in one SMTP transaction.
func (c *Channel) Send(ctx context.Context, m *alert.Message) error {
	msg, err := c.Render(m)
	if err != nil {
		return channel.Permanent("email: template", err)
	}
	op := "email: " + c.cfg.Smarthost
	if err := c.send(ctx, msg); err != nil {
		return c.classify(op, err)
	}
	return nil
}

// errNoTLS and errAuthNeedsTLS are configuration problems: not retried.
var (
	errNoTLS        = errors.New("the server does not offer STARTTLS and require_tls is set")
	errAuthNeedsTLS = errors.New("refusing AUTH PLAIN without TLS")
)

func (c *Channel) send(ctx context.Context, msg []byte) error {
	conn, err := c.dialer.DialContext(ctx, "tcp", c.cfg.Smarthost)
	if err != nil {
		return err
	}
	// net/smtp knows no context: a cancelled context closes the connection.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	cl, err := smtp.NewClient(conn, c.host)
	if err != nil {
		conn.Close()
		return err
	}
	defer cl.Close()
	if err := cl.Hello(c.cfg.Hello); err != nil {
		return err
	}
	tlsOn := false
	if ok, _ := cl.Extension("STARTTLS"); ok {
		if err := cl.StartTLS(c.tls); err != nil {
			return err
		}
		tlsOn = true
	} else if c.cfg.requireTLS() {
		return errNoTLS
	}
	if c.cfg.AuthUsername != "" {
		if !tlsOn {
			return errAuthNeedsTLS
		}
		if _, ok := cl.TLSConnectionState(); !ok {
			return errAuthNeedsTLS
		}
		auth := smtp.PlainAuth(c.cfg.AuthIdentity, c.cfg.AuthUsername, c.cfg.AuthPassword.Value(), c.host)
		if err := cl.Auth(auth); err != nil {
			return err
		}
	}
	if err := cl.Mail(addrOf(c.cfg.From)); err != nil {
		return err
	}
	for _, to := range c.cfg.To {
		if err := cl.Rcpt(addrOf(to)); err != nil {
			return err
		}
	}
	w, err := cl.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return cl.Quit()
}

// addrOf is the bare address of "Name <addr>".
func addrOf(s string) string {
	if i, j := strings.LastIndex(s, "<"), strings.LastIndex(s, ">"); i >= 0 && j > i {
		return s[i+1 : j]
	}
	return s
}

// classify turns an SMTP failure into a channel error: 4xx replies and
// network errors are retried, 5xx replies and TLS/auth policy refusals are
// not. Nothing of the password (plain or as the base64 of a PLAIN exchange)
// survives into the message.
func (c *Channel) classify(op string, err error) error {
	secrets := []string{c.cfg.AuthPassword.Value()}
	if c.cfg.AuthPassword != "" {
		resp := c.cfg.AuthIdentity + "\x00" + c.cfg.AuthUsername + "\x00" + c.cfg.AuthPassword.Value()
		secrets = append(secrets, base64.StdEncoding.EncodeToString([]byte(resp)))
	}
	clean := errors.New(channel.Scrub(err.Error(), secrets...))
	if errors.Is(err, errNoTLS) || errors.Is(err, errAuthNeedsTLS) {
		return channel.Permanent(op, clean)
	}
	var te *textproto.Error
	if errors.As(err, &te) {
		return &channel.Error{Op: op, StatusCode: te.Code, Retryable: te.Code/100 == 4, Err: clean}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return channel.Temporary(op, err)
	}
	return channel.Temporary(op, clean)
}
