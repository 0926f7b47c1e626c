// SHA-256 (FIPS 180-4) of a byte range: the executable's payload checksum.
#ifndef NEURONCLI_TFOP_SHA256_H_
#define NEURONCLI_TFOP_SHA256_H_

#include <cstddef>
#include <string>

namespace neuroncli {

// Lower-case hex digest, as Python's hashlib.sha256(...).hexdigest() writes it.
std::string Sha256Hex(const char* data, size_t size);

}  // namespace neuroncli

#endif  // NEURONCLI_TFOP_SHA256_H_
