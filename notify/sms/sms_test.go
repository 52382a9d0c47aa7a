package sms

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidewatch/tidewatch/notify/alert"
	"github.com/tidewatch/tidewatch/notify/channel"
)

// The worked example of Tencent Cloud's "Signature v3" documentation: CVM
// DescribeInstances in ap-guangzhou, timestamp 1551113065, with the
// documentation's example key pair. Every intermediate value is the
// documentation's.
func TestSignatureMatchesTencentsWorkedExample(t *testing.T) {
	const (
		secretID  = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE"
		secretKey = "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE"
		ts        = 1551113065
		payload   = `{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}`
	)
	hs := []header{{"Content-Type", "application/json; charset=utf-8"}, {"Host", "cvm.tencentcloudapi.com"}}
	if got := sha256Hex([]byte(payload)); got != "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064" {
		t.Fatalf("hashed payload %s", got)
	}
	cr, signed := canonicalRequest(hs, []byte(payload))
	wantCR := "POST\n/\n\ncontent-type:application/json; charset=utf-8\nhost:cvm.tencentcloudapi.com\n\ncontent-type;host\n" +
		"35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
	if cr != wantCR || signed != "content-type;host" {
		t.Fatalf("canonical request\n%q\nwant\n%q", cr, wantCR)
	}
	if got := sha256Hex([]byte(cr)); got != "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031" {
		t.Fatalf("hashed canonical request %s", got)
	}
	date, scope := credentialScope(ts, "cvm")
	if date != "2019-02-25" || scope != "2019-02-25/cvm/tc3_request" {
		t.Fatalf("scope %s %s", date, scope)
	}
	sts := stringToSign(ts, scope, cr)
	if sts != "TC3-HMAC-SHA256\n1551113065\n2019-02-25/cvm/tc3_request\n5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031" {
		t.Fatalf("string to sign %q", sts)
	}
	if got := signature(secretKey, date, "cvm", sts); got != "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168" {
		t.Fatalf("signature %s", got)
	}
	want := "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/cvm/tc3_request, " +
		"SignedHeaders=content-type;host, Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
	if got := authorization(secretID, secretKey, "cvm", ts, hs, []byte(payload)); got != want {
		t.Fatalf("authorization\n%s\nwant\n%s", got, want)
	}
}

// verifyTC3 checks a received request's signature the way the API does,
// written apart from the channel's signer: it rebuilds the canonical request
// from what arrived on the wire (the signed headers as sent, the body as
// received).
func verifyTC3(r *http.Request, body []byte, secretKey string, now time.Time) error {
	auth := r.Header.Get("Authorization")
	rest, ok := strings.CutPrefix(auth, "TC3-HMAC-SHA256 ")
	if !ok {
		return errors.New("AuthFailure.InvalidAuthorization")
	}
	fields := map[string]string{}
	for _, f := range strings.Split(rest, ", ") {
		k, v, _ := strings.Cut(f, "=")
		fields[k] = v
	}
	cred := strings.Split(fields["Credential"], "/")
	if len(cred) != 4 || cred[3] != "tc3_request" || cred[2] != "sms" {
		return errors.New("AuthFailure.InvalidAuthorization")
	}
	ts, err := strconv.ParseInt(r.Header.Get("X-TC-Timestamp"), 10, 64)
	if err != nil || now.Sub(time.Unix(ts, 0)).Abs() > 5*time.Minute {
		return errors.New("AuthFailure.SignatureExpire")
	}
	if cred[1] != time.Unix(ts, 0).UTC().Format("2006-01-02") {
		return errors.New("AuthFailure.InvalidAuthorization")
	}
	names := strings.Split(fields["SignedHeaders"], ";")
	if !sort.StringsAreSorted(names) || !strings.Contains(fields["SignedHeaders"], "content-type") || !strings.Contains(fields["SignedHeaders"], "host") {
		return errors.New("AuthFailure.InvalidAuthorization")
	}
	var canon strings.Builder
	for _, n := range names {
		v := r.Header.Get(n)
		if n == "host" {
			v = r.Host
		}
		canon.WriteString(n + ":" + strings.ToLower(strings.TrimSpace(v)) + "\n")
	}
	sum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	creq := strings.Join([]string{r.Method, r.URL.Path, r.URL.RawQuery, canon.String(), fields["SignedHeaders"], sum(body)}, "\n")
	sts := strings.Join([]string{"TC3-HMAC-SHA256", strconv.FormatInt(ts, 10), strings.Join(cred[1:], "/"), sum([]byte(creq))}, "\n")
	mac := func(k []byte, s string) []byte { m := hmac.New(sha256.New, k); m.Write([]byte(s)); return m.Sum(nil) }
	k := mac(mac(mac([]byte("TC3"+secretKey), cred[1]), "sms"), "tc3_request")
	if hex.EncodeToString(mac(k, sts)) != fields["Signature"] {
		return errors.New("AuthFailure.SignatureFailure")
	}
	return nil
}

// smsAPI is a fake of SendSms 2021-01-11.
type smsAPI struct {
	*httptest.Server
	secretKey string
	// failNumber, if set, gets this code instead of Ok.
	failNumber, failCode string
	mu                   sync.Mutex
	requests             []map[string]any
}

func newSMSAPI(t *testing.T, secretKey string) *smsAPI {
	s := &smsAPI{secretKey: secretKey}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		fail := func(code, msg string) {
			fmt.Fprintf(w, `{"Response":{"Error":{"Code":%q,"Message":%q},"RequestId":"req-1"}}`, code, msg)
		}
		if r.Header.Get("X-TC-Action") != "SendSms" || r.Header.Get("X-TC-Version") != "2021-01-11" || r.Header.Get("X-TC-Region") == "" {
			fail("InvalidAction", "bad action, version or region")
			return
		}
		if r.Header.Get("Content-Type") != "application/json; charset=utf-8" {
			fail("InvalidParameter", "content type")
			return
		}
		if err := verifyTC3(r, body, s.secretKey, time.Now()); err != nil {
			// The real API says which check failed, never the key; this
			// fake quotes the Authorization header to prove it is scrubbed.
			fail(err.Error(), "The provided credentials could not be validated: "+r.Header.Get("Authorization"))
			return
		}
		var req map[string]any
		if err := json.Unmarshal(body, &req); err != nil {
			fail("InvalidParameter", err.Error())
			return
		}
		s.mu.Lock()
		s.requests = append(s.requests, req)
		s.mu.Unlock()
		var statuses []string
		for _, p := range req["PhoneNumberSet"].([]any) {
			code, msg := "Ok", "send success"
			if p == s.failNumber {
				code, msg = s.failCode, "the number was sent to within 30 seconds"
			}
			statuses = append(statuses, fmt.Sprintf(`{"SerialNo":"2640:1","PhoneNumber":%q,"Fee":1,"SessionContext":%q,"Code":%q,"Message":%q,"IsoCode":"CN"}`,
				p, req["SessionContext"], code, msg))
		}
		fmt.Fprintf(w, `{"Response":{"SendStatusSet":[%s],"RequestId":"req-2"}}`, strings.Join(statuses, ","))
	}))
	t.Cleanup(s.Close)
	return s
}

func testConfig(endpoint string) Config {
	return Config{SecretID: "AKIDtidewatchTEST0001", SecretKey: "sk-tidewatch-very-secret-0001", Region: "ap-guangzhou",
		Endpoint: endpoint, SDKAppID: "1400006666", SignName: "潮汐监控", TemplateID: "1110",
		PhoneNumbers: []string{"+8613711112222", "+8613711113333"}}
}

func testMessage() *alert.Message {
	a := alert.New("clicks", "JOB_MANAGER_NUM_RUNNING_JOBS_BECOME_ZERO", alert.LevelFatal, nil)
	return &alert.Message{IdempotencyKey: "k3y0123456789abcdef", Status: "firing", Receiver: "oncall",
		CommonLabels: a.Labels, Alerts: alert.Alerts{alert.NewMessageAlert(a, time.Now())}}
}

func TestSendSms(t *testing.T) {
	api := newSMSAPI(t, "sk-tidewatch-very-secret-0001")
	c, err := New(testConfig(api.URL), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Send(context.Background(), testMessage()); err != nil {
		t.Fatal(err)
	}
	req := api.requests[0]
	want := map[string]any{"SmsSdkAppId": "1400006666", "SignName": "潮汐监控", "TemplateId": "1110", "SessionContext": "k3y0123456789abcdef"}
	for k, v := range want {
		if req[k] != v {
			t.Errorf("%s = %v, want %v", k, req[k], v)
		}
	}
	if got := fmt.Sprint(req["TemplateParamSet"]); got != "[FIRING JOB_MANAGER_NUM_RUNNING_JOBS_BECOME_ZERO clicks 1]" {
		t.Errorf("default params %s", got)
	}
	if got := fmt.Sprint(req["PhoneNumberSet"]); got != "[+8613711112222 +8613711113333]" {
		t.Errorf("numbers %s", got)
	}
}

func TestTemplateParams(t *testing.T) {
	api := newSMSAPI(t, "sk-tidewatch-very-secret-0001")
	cfg := testConfig(api.URL)
	cfg.TemplateParams = []string{"{{ .CommonLabels.job | truncate 4 }}", "{{ len .Alerts.Firing }}"}
	c, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Send(context.Background(), testMessage()); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(api.requests[0]["TemplateParamSet"]); got != "[cli… 1]" {
		t.Errorf("params %s", got)
	}
}

func TestPartialFailureIsRetriedForTheRestOnly(t *testing.T) {
	api := newSMSAPI(t, "sk-tidewatch-very-secret-0001")
	api.failNumber, api.failCode = "+8613711113333", "LimitExceeded.PhoneNumberThirtySecondLimit"
	c, _ := New(testConfig(api.URL), nil)
	m := testMessage()
	err := c.Send(context.Background(), m)
	var pe *channel.PartialError
	if !errors.As(err, &pe) || fmt.Sprint(pe.Delivered) != "[+8613711112222]" {
		t.Fatalf("partial: %v", err)
	}
	if retry, _ := channel.Retryable(err); !retry || !strings.Contains(err.Error(), "PhoneNumberThirtySecondLimit") {
		t.Errorf("a 30-second limit is worth a retry: %v", err)
	}
	api.failNumber = ""
	m.Done = pe.Delivered
	if err := c.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(api.requests[1]["PhoneNumberSet"]); got != "[+8613711113333]" {
		t.Errorf("the retry texted %s", got)
	}
	m.Done = append(m.Done, "+8613711113333")
	if err := c.Send(context.Background(), m); err != nil || len(api.requests) != 2 {
		t.Errorf("everyone reached: %v, %d requests", err, len(api.requests))
	}
}

func TestErrorsKeepSecrets(t *testing.T) {
	api := newSMSAPI(t, "the-right-key")
	cfg := testConfig(api.URL)
	c, _ := New(cfg, nil)
	err := c.Send(context.Background(), testMessage())
	if retry, _ := channel.Retryable(err); err == nil || retry || !strings.Contains(err.Error(), "AuthFailure.SignatureFailure") {
		t.Fatalf("wrong key: %v", err)
	}
	for _, s := range []string{cfg.SecretKey.Value(), cfg.SecretID.Value()} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error quotes a secret: %v", err)
		}
	}
	// Expired timestamps (a skewed clock) are refused, not retried.
	c.now = func() time.Time { return time.Now().Add(-time.Hour) }
	api.secretKey = cfg.SecretKey.Value()
	if err := c.Send(context.Background(), testMessage()); err == nil || !strings.Contains(err.Error(), "SignatureExpire") {
		t.Errorf("skewed clock: %v", err)
	}
	// A 5xx from the gateway is retried.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(502) }))
	defer srv.Close()
	c, _ = New(testConfig(srv.URL), nil)
	if err := c.Send(context.Background(), testMessage()); err == nil {
		t.Error("502 accepted")
	} else if retry, _ := channel.Retryable(err); !retry {
		t.Errorf("502 not retried: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	good := testConfig("")
	for _, tc := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.SecretID = "" }, "secret_id: must be set"},
		{func(c *Config) { c.SecretKey = "" }, "secret_key: must be set"},
		{func(c *Config) { c.Region = "" }, "region: must be set"},
		{func(c *Config) { c.Region = "Guangzhou" }, "region: \"Guangzhou\" is not a region name"},
		{func(c *Config) { c.SDKAppID = "app" }, "sdk_app_id: \"app\" is not an SMS application id"},
		{func(c *Config) { c.TemplateID = "" }, "template_id: must be set"},
		{func(c *Config) { c.PhoneNumbers = nil }, "phone_numbers: must list at least one number"},
		{func(c *Config) { c.PhoneNumbers = []string{"13711112222"} }, "phone_numbers[0]: \"13711112222\" is not an E.164 number"},
		{func(c *Config) { c.PhoneNumbers = []string{"+8613711112222", "+8613711112222"} }, "phone_numbers[1]: +8613711112222 is listed twice"},
		{func(c *Config) { c.Endpoint = "sms.tencentcloudapi.com" }, "endpoint: \"sms.tencentcloudapi.com\" is not an http"},
		{func(c *Config) { c.TemplateParams = []string{"{{ .x"} }, "template_params[0]:"},
	} {
		c := good
		tc.edit(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "very-secret") {
			t.Errorf("%v, want %q", err, tc.want)
		}
	}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
}
