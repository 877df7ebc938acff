#pragma once

// `segd keys …`: manages API keys from the command line while segd is stopped (a running segd
// holds the data directory; use /v1/keys then). This is how the first admin key is made.
//
//   segd keys create --data-dir DIR --role ROLE [--segments GLOB,GLOB] [--description TEXT]
//   segd keys list --data-dir DIR
//   segd keys delete --data-dir DIR ID
//
// create prints the key alone on stdout (so that `KEY=$(segd keys create …)` works) and what
// it made on stderr; the key is not shown again.

#include <string>
#include <vector>

namespace segd::server {

// Runs the command of `args` (the words after "keys"). Returns the exit code: 0 done, 1 a
// failure (the data directory is in use, a file cannot be written), 2 bad arguments.
int RunKeysCommand(const std::vector<std::string>& args);

}  // namespace segd::server
