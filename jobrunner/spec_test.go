package jobrunner

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseSpecGood(t *testing.T) {
	minimal := defaultSpec()
	minimal.Name = "minimal"
	minimal.Source.Type = SourceDatagen
	minimal.KeyBy = "key"
	minimal.Window = WindowSpec{Type: "tumbling", Size: 10 * time.Second}
	minimal.Aggregate = Aggregates{{Fn: "count"}}
	minimal.Sink.Type = SinkStdout

	full := Spec{
		Name: "clicks-per-key", Parallelism: 1, MaxParallelism: 256, Time: TimeEvent,
		Watermark:    WatermarkSpec{MaxOutOfOrderness: 2 * time.Second},
		Checkpoint:   CheckpointSpec{Interval: 5 * time.Second, Retained: 5},
		StateBackend: BackendHeap,
		Source: SourceSpec{Type: SourceDatagen, Datagen: DatagenSpec{
			Rate: 0, Keys: 7, Seed: 42, Count: 1000, Disorder: 500 * time.Millisecond,
			StartTime: time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC),
		}},
		KeyBy:     "key",
		Window:    WindowSpec{Type: "tumbling", Size: time.Minute},
		Aggregate: Aggregates{{Fn: "count"}},
		Sink:      SinkSpec{Type: SinkFile, File: FileSinkSpec{Path: "output/counts.jsonl", Format: "jsonl"}},
		Resources: ResourcesSpec{Memory: 1536 << 20, VCores: 2},
	}

	fromJSON := defaultSpec()
	fromJSON.Name = "from-json"
	fromJSON.Checkpoint.Interval = 0 // explicit 0 disables, not "default"
	fromJSON.Source = SourceSpec{Type: SourceDatagen, Datagen: DatagenSpec{Rate: 200, Keys: 50, Seed: 1}}
	fromJSON.KeyBy = "key"
	fromJSON.Window = WindowSpec{Type: "tumbling", Size: 5 * time.Second}
	fromJSON.Aggregate = Aggregates{{Fn: "count"}}
	fromJSON.Sink = SinkSpec{Type: SinkFile, File: FileSinkSpec{Path: "/tmp/x.jsonl"}}

	tests := []struct {
		file string
		want Spec
	}{
		{"minimal.yaml", minimal},
		{"full.yaml", full},
		{"spec.json", fromJSON},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata/specs/good", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseSpec(data, tc.file)
			if err != nil {
				t.Fatalf("ParseSpec: %v", err)
			}
			if !got.Source.Datagen.StartTime.Equal(tc.want.Source.Datagen.StartTime) {
				t.Errorf("startTime = %v, want %v", got.Source.Datagen.StartTime, tc.want.Source.Datagen.StartTime)
			}
			got.Source.Datagen.StartTime = tc.want.Source.Datagen.StartTime
			if !reflect.DeepEqual(*got, tc.want) {
				t.Errorf("spec mismatch\n got: %+v\nwant: %+v", *got, tc.want)
			}
		})
	}
}

// TestParseSpecExampleConfigs keeps the shipped example jobs valid.
func TestParseSpecExampleConfigs(t *testing.T) {
	files, _ := filepath.Glob("../configs/jobs/*.yaml")
	if len(files) == 0 {
		t.Fatal("no example job specs in configs/jobs")
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseSpec(data, filepath.Base(f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// Every file in testdata/specs/bad starts with "# want: <substring>"; the
// first error ParseSpec reports must contain it.
func TestParseSpecBad(t *testing.T) {
	files, err := filepath.Glob("testdata/specs/bad/*.yaml")
	if err != nil || len(files) < 10 {
		t.Fatalf("want at least 10 bad specs, found %d (%v)", len(files), err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(strings.TrimSuffix(name, ".yaml"), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			first, _, _ := bufio.NewReader(bytes.NewReader(data)).ReadLine()
			want, ok := strings.CutPrefix(string(first), "# want: ")
			if !ok || want == "" {
				t.Fatalf("%s: first line must be '# want: <error substring>'", f)
			}
			spec, err := ParseSpec(data, name)
			if err == nil {
				t.Fatalf("ParseSpec accepted it: %+v", spec)
			}
			var se *SpecError
			if !errors.As(err, &se) {
				t.Fatalf("error %v (%T) is not a *SpecError", err, err)
			}
			if !strings.Contains(se.Error(), want) {
				t.Errorf("first error:\n  %s\nwant it to contain:\n  %s\nall errors:\n%v", se, want, err)
			}
		})
	}
}

func TestParseSpecReportsAllErrors(t *testing.T) {
	data, err := os.ReadFile("testdata/specs/bad/several-errors.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, err = ParseSpec(data, "several-errors.yaml")
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("error %v is not a joined error", err)
	}
	var paths []string
	for _, e := range joined.Unwrap() {
		var se *SpecError
		if !errors.As(e, &se) {
			t.Fatalf("%v is not a *SpecError", e)
		}
		paths = append(paths, se.Path)
	}
	want := []string{"source.datagen.rate", "source.datagen.keys"}
	if strings.Join(paths, ",") != strings.Join(want, ",") {
		t.Errorf("error paths = %v, want %v", paths, want)
	}
}

func TestSpecErrorFormat(t *testing.T) {
	tests := []struct {
		err  SpecError
		want string
	}{
		{SpecError{File: "job.yaml", Line: 7, Path: "source.datagen.rate", Msg: "must be >= 0, got -5"}, "job.yaml:7: source.datagen.rate: must be >= 0, got -5"},
		{SpecError{File: "job.yaml", Path: "name", Msg: "required"}, "job.yaml: name: required"},
		{SpecError{Line: 3, Path: "keyBy", Msg: "required"}, "line 3: keyBy: required"},
		{SpecError{Msg: "empty job spec"}, "empty job spec"},
	}
	for _, tc := range tests {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}

func FuzzParseSpec(f *testing.F) {
	for _, dir := range []string{"testdata/specs/good", "testdata/specs/bad"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*"))
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Add([]byte("a: &x [*x]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		spec, err := ParseSpec(data, "fuzz.yaml")
		if err != nil {
			var se *SpecError
			if !errors.As(err, &se) {
				t.Fatalf("error %v (%T) is not a *SpecError", err, err)
			}
			if spec != nil {
				t.Fatal("spec and error both returned")
			}
			return
		}
		// An accepted spec satisfies the invariants the runtime relies on.
		if spec.Parallelism < 1 || spec.Keyed() && len(spec.Aggregate) == 0 || spec.Source.Type == SourceDatagen && spec.Source.Datagen.Keys < 1 ||
			spec.Source.Datagen.Rate < 0 || spec.Checkpoint.Retained < 1 || !nameRE.MatchString(spec.Name) {
			t.Fatalf("accepted an invalid spec: %+v", spec)
		}
	})
}

func TestParseByteSize(t *testing.T) {
	good := map[string]ByteSize{"0": 0, "100": 100, "64k": 64 << 10, "512m": 512 << 20, "512M": 512 << 20,
		"1g": 1 << 30, "1536Mi": 1536 << 20, "2Gi": 2 << 30, "1GB": 1 << 30, "1t": 1 << 40}
	for in, want := range good {
		if got, err := ParseByteSize(in); err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "g", "1.5g", "-1m", "1x", "0x10", "9999999999t"} {
		if got, err := ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) = %d, want an error", in, got)
		}
	}
	if s := ByteSize(1536 << 20).String(); s != "1536Mi" {
		t.Errorf("String = %q", s)
	}
}
