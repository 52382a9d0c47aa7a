package sms

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"

	"github.com/tidewatch/tidewatch/notify/channel"
)

// Config of Tencent Cloud SMS (API 2021-01-11, action SendSms).
type Config struct {
	// SecretID and SecretKey are a Tencent Cloud API key pair (CAM). Both
	// are kept out of logs and errors.
	SecretID  channel.Secret `yaml:"secret_id"`
	SecretKey channel.Secret `yaml:"secret_key"`
	// Region of the SMS API: ap-guangzhou, ap-beijing or ap-nanjing.
	Region string `yaml:"region"`
	// Endpoint is the API's address; default https://sms.tencentcloudapi.com.
	Endpoint string `yaml:"endpoint"`
	// SDKAppID is the SMS application (SmsSdkAppId, 1400…).
	SDKAppID string `yaml:"sdk_app_id"`
	// SignName is the approved signature (required for numbers in mainland China).
	SignName string `yaml:"sign_name"`
	// TemplateID is the approved message template; its {1}, {2}, … are
	// filled from TemplateParams.
	TemplateID string `yaml:"template_id"`
	// PhoneNumbers in E.164 form: +8613711112222.
	PhoneNumbers []string `yaml:"phone_numbers"`
	// TemplateParams are text/templates over the message, one per
	// placeholder of the SMS template. Default: the lines of the embedded
	// "sms.params" template (status, event, job, number of alerts).
	TemplateParams []string `yaml:"template_params"`
}

// DefaultEndpoint is Tencent Cloud's SMS API.
const DefaultEndpoint = "https://sms.tencentcloudapi.com"

// MaxPhoneNumbers is SendSms's limit per request.
const MaxPhoneNumbers = 200

var (
	e164     = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
	appID    = regexp.MustCompile(`^[0-9]{6,12}$`)
	regionRe = regexp.MustCompile(`^[a-z]{2}-[a-z]+(-[0-9]+)?$`)
)

// Validate names the key (relative to the channel) that cannot work.
func (c Config) Validate() error {
	switch {
	case c.SecretID == "":
		return errors.New("secret_id: must be set")
	case c.SecretKey == "":
		return errors.New("secret_key: must be set")
	case c.Region == "":
		return errors.New("region: must be set (ap-guangzhou, ap-beijing or ap-nanjing)")
	case !regionRe.MatchString(c.Region):
		return fmt.Errorf("region: %q is not a region name like ap-guangzhou", c.Region)
	case c.SDKAppID == "":
		return errors.New("sdk_app_id: must be set")
	case !appID.MatchString(c.SDKAppID):
		return fmt.Errorf("sdk_app_id: %q is not an SMS application id (digits, like 1400006666)", c.SDKAppID)
	case c.TemplateID == "":
		return errors.New("template_id: must be set")
	case len(c.PhoneNumbers) == 0:
		return errors.New("phone_numbers: must list at least one number")
	case len(c.PhoneNumbers) > MaxPhoneNumbers:
		return fmt.Errorf("phone_numbers: at most %d numbers, got %d", MaxPhoneNumbers, len(c.PhoneNumbers))
	}
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("endpoint: %q is not an http:// or https:// URL", c.Endpoint)
		}
	}
	seen := map[string]bool{}
	for i, p := range c.PhoneNumbers {
		if !e164.MatchString(p) {
			return fmt.Errorf("phone_numbers[%d]: %q is not an E.164 number like +8613711112222", i, p)
		}
		if seen[p] {
			return fmt.Errorf("phone_numbers[%d]: %s is listed twice", i, p)
		}
		seen[p] = true
	}
	for i, p := range c.TemplateParams {
		if _, err := channel.ParseTemplate(defaultTemplate, paramsTemplate, p); err != nil {
			return fmt.Errorf("template_params[%d]: %w", i, err)
		}
	}
	return nil
}
