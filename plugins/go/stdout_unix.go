//go:build unix

package sdk

import (
	"os"

	"golang.org/x/sys/unix"
)

// redirectStdout points file descriptor 1 at stderr once the handshake line is
// out: the server reads one line of stdout, so anything a plugin prints later
// (a stray fmt.Println) would sit in a pipe nobody reads and, once the pipe is
// full, block the plugin. On stderr it reaches the server's log instead.
func redirectStdout() error {
	return unix.Dup2(int(os.Stderr.Fd()), int(os.Stdout.Fd()))
}
