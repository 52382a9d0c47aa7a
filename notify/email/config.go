package email

import (
	"errors"
	"fmt"
	"net"
	"net/mail"
	"os"
	"strconv"

	"github.com/tidewatch/tidewatch/notify/channel"
)

// Config of an e-mail channel (SMTP with STARTTLS).
type Config struct {
	// Smarthost is the SMTP server, host:port (587 for submission).
	Smarthost string `yaml:"smarthost"`
	// From is the sender address; To the recipients.
	From string   `yaml:"from"`
	To   []string `yaml:"to"`
	// Hello is the name this client gives in EHLO; default "localhost".
	Hello string `yaml:"hello"`
	// AuthUsername and AuthPassword, when set, log in with AUTH PLAIN.
	// PLAIN is used only over TLS (after STARTTLS): the password is never
	// sent in the clear, whatever the server offers.
	AuthUsername string         `yaml:"auth_username"`
	AuthPassword channel.Secret `yaml:"auth_password"`
	AuthIdentity string         `yaml:"auth_identity"`
	// RequireTLS refuses to send (even without a login) to a server that
	// does not offer STARTTLS. Default true.
	RequireTLS *bool `yaml:"require_tls"`
	TLS        struct {
		// CAFile is a PEM bundle of the CAs to trust instead of the system's.
		CAFile string `yaml:"ca_file"`
		// ServerName to verify the certificate against; default the smarthost's host.
		ServerName         string `yaml:"server_name"`
		InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
	} `yaml:"tls"`
	// Subject replaces the template "email.subject"; Template replaces
	// "email.text", the plain-text body (see default.tmpl).
	Subject  string `yaml:"subject"`
	Template string `yaml:"template"`
}

func (c Config) requireTLS() bool { return c.RequireTLS == nil || *c.RequireTLS }

// Validate names the key (relative to the channel) that cannot work.
func (c Config) Validate() error {
	if c.Smarthost == "" {
		return errors.New("smarthost: must be set (host:port)")
	}
	host, port, err := net.SplitHostPort(c.Smarthost)
	if err != nil || host == "" {
		return fmt.Errorf("smarthost: %q is not host:port", c.Smarthost)
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return fmt.Errorf("smarthost: %q has no valid port", c.Smarthost)
	}
	if c.From == "" {
		return errors.New("from: must be set")
	}
	if _, err := mail.ParseAddress(c.From); err != nil {
		return fmt.Errorf("from: %q is not an e-mail address", c.From)
	}
	if len(c.To) == 0 {
		return errors.New("to: must list at least one address")
	}
	for i, to := range c.To {
		if _, err := mail.ParseAddress(to); err != nil {
			return fmt.Errorf("to[%d]: %q is not an e-mail address", i, to)
		}
	}
	if (c.AuthUsername == "") != (c.AuthPassword == "") {
		return errors.New("auth_password: auth_username and auth_password go together")
	}
	if c.AuthUsername != "" && !c.requireTLS() {
		return errors.New("require_tls: must be true when auth_username is set (PLAIN authentication only over TLS)")
	}
	if c.TLS.CAFile != "" {
		if _, err := os.Stat(c.TLS.CAFile); err != nil {
			return fmt.Errorf("tls.ca_file: %w", err)
		}
	}
	if _, err := channel.ParseTemplate(defaultTemplate, subjectTemplate, c.Subject); err != nil {
		return fmt.Errorf("subject: %w", err)
	}
	if _, err := channel.ParseTemplate(defaultTemplate, textTemplate, c.Template); err != nil {
		return fmt.Errorf("template: %w", err)
	}
	return nil
}
