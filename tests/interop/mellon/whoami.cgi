#!/bin/sh
# The protected page: every MELLON_* variable mod_auth_mellon set from the assertion, one per line.
printf 'Content-Type: text/plain\r\n\r\n'
env | grep '^MELLON_' | sort
