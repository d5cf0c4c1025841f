// Package readme holds the tests of the repository's documentation: README.md
// and docs/*.md stand alone (every link leads to a file of this repository, or
// a heading of one, and nothing points at material outside it), and the
// grpcurl and curl examples of README.md run as written against the server
// `make run` starts, answering what the README says they answer.
package readme
