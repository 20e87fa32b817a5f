package ipvsadm

// -R input, as ipvsadm's config_stream_read splits it: one command per
// line, words separated by spaces, tabs and carriage returns, the word
// "ipvsadm" dropped wherever it appears, lines without words skipped.
// ipvsadm's reader means "#" to start a comment but never detects it (a
// "#" line reaches the option parser and ends the restore with the
// "Try ... -h" message); GVS skips from a word starting with "#" to the
// end of the line, as the reader's own comment says.

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// RestoreLine is one command of -R input and its line number (from 1).
type RestoreLine struct {
	Line int
	Argv []string // Argv[0] is the program name
}

// RestoreLines splits -R input into commands.
func RestoreLines(r io.Reader, prog string) ([]RestoreLine, error) {
	br := bufio.NewReader(r)
	var out []RestoreLine
	for n := 1; ; n++ {
		line, err := br.ReadString('\n')
		if line != "" {
			argv := []string{prog}
			for _, w := range strings.FieldsFunc(line, func(r rune) bool {
				return r == ' ' || r == '\t' || r == '\n' || r == '\r'
			}) {
				if strings.HasPrefix(w, "#") {
					break
				}
				if w != "ipvsadm" {
					argv = append(argv, w)
				}
			}
			if len(argv) > 1 {
				out = append(out, RestoreLine{Line: n, Argv: argv})
			}
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// RestoreCommand is a parsed -R line.
type RestoreCommand struct {
	Line int
	*Command
}

// ParseRestore parses every line of -R input and checks it against what
// GVS supports, before anything is applied: a bad line stops the restore
// with the line's number and ipvsadm's message for it.
func ParseRestore(r io.Reader, prog string, po ParseOptions) ([]RestoreCommand, *Error) {
	lines, err := RestoreLines(r, prog)
	if err != nil {
		return nil, &Error{Msg: fmt.Sprintf("ipvsadm: reading the rules: %v", err), Code: ExitFail}
	}
	po.Restoring = true
	po.AllowSocket = false
	var cmds []RestoreCommand
	for _, l := range lines {
		c, perr := Parse(l.Argv, po)
		if perr == nil {
			perr = c.CheckGVS()
		}
		if perr != nil {
			return nil, LineError(l.Line, perr)
		}
		cmds = append(cmds, RestoreCommand{Line: l.Line, Command: c})
	}
	return cmds, nil
}

// LineError prefixes an error of -R input with its line number.
func LineError(line int, e *Error) *Error {
	return &Error{Msg: fmt.Sprintf("ipvsadm: line %d: %s", line, strings.TrimPrefix(e.Msg, "ipvsadm: ")), Code: e.Code}
}
