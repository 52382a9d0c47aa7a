package hadoopconf

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Property is one <property> of a Hadoop configuration file.
type Property struct {
	Name  string
	Value string
	Final bool
}

// Parse reads the Hadoop XML configuration format:
//
//	<configuration>
//	  <property><name>k</name><value>v</value><final>true</final></property>
//	</configuration>
//
// Names are trimmed; values are kept as written (Get trims where Hadoop uses
// getTrimmed). Other child elements (description, source, tag) are ignored.
// A property without a name is skipped, as Hadoop does. xi:include is not
// supported and is an error rather than silently ignored.
func Parse(r io.Reader) ([]Property, error) {
	dec := xml.NewDecoder(r)
	dec.Strict = true
	var props []Property
	depth := 0
	sawRoot := false
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			if !sawRoot {
				return nil, fmt.Errorf("%w: no <configuration> element", ErrSyntax)
			}
			return props, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrSyntax, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch {
			case depth == 1:
				if t.Name.Local != "configuration" {
					return nil, fmt.Errorf("%w: root element is <%s>, want <configuration>", ErrSyntax, t.Name.Local)
				}
				sawRoot = true
			case depth == 2 && t.Name.Local == "property":
				p, err := parseProperty(dec, t)
				if err != nil {
					return nil, err
				}
				depth--
				if p.Name != "" {
					props = append(props, p)
				}
			case t.Name.Local == "include":
				return nil, fmt.Errorf("%w: xi:include is not supported", ErrSyntax)
			default:
				if err := dec.Skip(); err != nil {
					return nil, fmt.Errorf("%w: %v", ErrSyntax, err)
				}
				depth--
			}
		case xml.EndElement:
			depth--
		}
	}
}

func parseProperty(dec *xml.Decoder, start xml.StartElement) (Property, error) {
	var raw struct {
		Name  []string `xml:"name"`
		Value []string `xml:"value"`
		Final []string `xml:"final"`
	}
	if err := dec.DecodeElement(&raw, &start); err != nil {
		return Property{}, fmt.Errorf("%w: property: %v", ErrSyntax, err)
	}
	var p Property
	if len(raw.Name) > 0 {
		p.Name = strings.TrimSpace(raw.Name[len(raw.Name)-1])
	}
	if len(raw.Value) > 0 {
		p.Value = raw.Value[len(raw.Value)-1]
	}
	if len(raw.Final) > 0 {
		p.Final = strings.EqualFold(strings.TrimSpace(raw.Final[len(raw.Final)-1]), "true")
	}
	return p, nil
}
