// The neuroncli executable container (neuroncli/format/executable.py), read without
// TensorFlow: magic, version, the JSON header's tensor names, and the payload (a GraphDef)
// checked against its SHA-256.  The magic and version come from that Python module as -D
// flags at build time, so each constant keeps one home.
#ifndef NEURONCLI_TFOP_EXECUTABLE_H_
#define NEURONCLI_TFOP_EXECUTABLE_H_

#include <cstddef>
#include <string>
#include <vector>

namespace neuroncli {

// What the kernel needs of one program.
struct Executable {
  std::vector<std::string> input_names;   // placeholders inside the payload, "op:port"
  std::vector<std::string> output_names;  // fetched tensors inside the payload
  std::string compiler;                   // who wrote it, for messages
  size_t payload_offset = 0;              // the payload is data[payload_offset:]
};

// Parses and verifies `data`.  On failure returns false and sets `error` to a message that
// says what is wrong and what to do (a foreign program, e.g. a NEFF, needs Neuron hardware).
bool ReadExecutable(const std::string& data, Executable* out, std::string* error);

}  // namespace neuroncli

#endif  // NEURONCLI_TFOP_EXECUTABLE_H_
