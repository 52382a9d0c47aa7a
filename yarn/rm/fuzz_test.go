package rm

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecodeAnswers feeds arbitrary bytes to every decoder of RM answers.
// They must never panic, and what decodes must encode again.
func FuzzDecodeAnswers(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(samplesDir, "*.json"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"apps":{}}`))
	f.Add([]byte(`{"apps":null}`))
	f.Add([]byte(`{"entry":{"key":"a","value":"1"},"entry":{"key":"b","value":"2"}}`))
	f.Add([]byte(`{"RemoteException":{"exception":"X","message":"m","javaClassName":"a.X"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var app struct {
			App *Application `json:"app"`
		}
		_ = json.Unmarshal(b, &app)
		var apps struct {
			Apps *struct {
				App list[Application] `json:"app"`
			} `json:"apps"`
		}
		_ = json.Unmarshal(b, &apps)
		var rep AttemptReport
		_ = json.Unmarshal(b, &rep)
		var sub ApplicationSubmission
		if json.Unmarshal(b, &sub) == nil {
			if _, err := json.Marshal(&sub); err != nil {
				t.Fatalf("decoded submission does not encode: %v", err)
			}
		}
		var m Int64Map
		_ = m.UnmarshalJSON(b)
		_, _ = parseSchedulerInfo(b)
		_ = newRemoteError("fuzz", 500, "", b).Error()
		_ = summarizeBody(b)
	})
}
