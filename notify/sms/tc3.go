package sms

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strconv"
	"strings"
	"time"
)

// TC3-HMAC-SHA256, Tencent Cloud API 3.0's signature (signature v3):
//
//	CanonicalRequest = Method \n URI \n Query \n CanonicalHeaders \n SignedHeaders \n hex(sha256(payload))
//	StringToSign     = "TC3-HMAC-SHA256" \n timestamp \n date/service/tc3_request \n hex(sha256(CanonicalRequest))
//	SecretSigning    = HMAC(HMAC(HMAC("TC3"+SecretKey, date), service), "tc3_request")
//	Signature        = hex(HMAC(SecretSigning, StringToSign))
//	Authorization    = "TC3-HMAC-SHA256 Credential=" SecretId/date/service/tc3_request
//	                   ", SignedHeaders=" SignedHeaders ", Signature=" Signature
//
// date is the UTC date of the timestamp. Header names and values are
// lower-cased and trimmed, sorted by name, each line ending in \n.

const algorithm = "TC3-HMAC-SHA256"

// header is one signed header.
type header struct{ name, value string }

// canonicalHeaders returns the CanonicalHeaders and SignedHeaders strings.
func canonicalHeaders(hs []header) (string, string) {
	c := make([]header, len(hs))
	for i, h := range hs {
		c[i] = header{strings.ToLower(strings.TrimSpace(h.name)), strings.ToLower(strings.TrimSpace(h.value))}
	}
	sort.Slice(c, func(i, j int) bool { return c[i].name < c[j].name })
	var ch strings.Builder
	names := make([]string, len(c))
	for i, h := range c {
		ch.WriteString(h.name + ":" + h.value + "\n")
		names[i] = h.name
	}
	return ch.String(), strings.Join(names, ";")
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// canonicalRequest of a POST to / without a query, as API 3.0 uses.
func canonicalRequest(hs []header, payload []byte) (cr, signed string) {
	ch, signed := canonicalHeaders(hs)
	return "POST\n/\n\n" + ch + "\n" + signed + "\n" + sha256Hex(payload), signed
}

func credentialScope(ts int64, service string) (date, scope string) {
	date = time.Unix(ts, 0).UTC().Format("2006-01-02")
	return date, date + "/" + service + "/tc3_request"
}

func stringToSign(ts int64, scope, cr string) string {
	return algorithm + "\n" + strconv.FormatInt(ts, 10) + "\n" + scope + "\n" + sha256Hex([]byte(cr))
}

func signature(secretKey, date, service, sts string) string {
	k := hmacSHA256([]byte("TC3"+secretKey), date)
	k = hmacSHA256(k, service)
	k = hmacSHA256(k, "tc3_request")
	return hex.EncodeToString(hmacSHA256(k, sts))
}

// authorization is the Authorization header of a request with the given
// signed headers and payload.
func authorization(secretID, secretKey, service string, ts int64, hs []header, payload []byte) string {
	cr, signed := canonicalRequest(hs, payload)
	date, scope := credentialScope(ts, service)
	sig := signature(secretKey, date, service, stringToSign(ts, scope, cr))
	return algorithm + " Credential=" + secretID + "/" + scope + ", SignedHeaders=" + signed + ", Signature=" + sig
}
