// Reading the executable container.  The JSON header is written by Python's json.dumps (keys
// sorted, ASCII only, \uXXXX escapes), so a small reader of strings, string arrays and
// skipped values is all it takes.
#include "executable.h"

#include <cstdint>
#include <cstring>

#include "sha256.h"

#ifndef NEURONCLI_EXE_MAGIC
#error "build with -DNEURONCLI_EXE_MAGIC (neuroncli/tfop/build.py passes it)"
#endif
#ifndef NEURONCLI_EXE_VERSION
#error "build with -DNEURONCLI_EXE_VERSION (neuroncli/tfop/build.py passes it)"
#endif

namespace neuroncli {
namespace {

constexpr size_t kMagicSize = 8;
constexpr size_t kFixedSize = kMagicSize + 2 + 4;  // magic, u16 version, u32 header length

uint32_t LittleEndian(const std::string& data, size_t pos, int bytes) {
  uint32_t value = 0;
  for (int i = bytes - 1; i >= 0; --i) value = (value << 8) | uint8_t(data[pos + i]);
  return value;
}

class JsonReader {
 public:
  JsonReader(const char* begin, const char* end) : p_(begin), end_(end) {}

  bool Object(Executable* out) {
    if (!Consume('{')) return false;
    if (Consume('}')) return true;
    do {
      std::string key;
      if (!String(&key) || !Consume(':')) return false;
      bool ok = key == "input_names"    ? StringArray(&out->input_names)
                : key == "output_names" ? StringArray(&out->output_names)
                : key == "compiler"     ? String(&out->compiler)
                : key == "payload_sha256" ? String(&sha256_)
                                          : Skip(0);
      if (!ok) return false;
    } while (Consume(','));
    return Consume('}');
  }
  const std::string& sha256() const { return sha256_; }

 private:
  void Space() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }
  bool Consume(char c) {
    Space();
    if (p_ < end_ && *p_ == c) { ++p_; return true; }
    return false;
  }
  bool Hex4(uint32_t* code) {
    if (end_ - p_ < 4) return false;
    *code = 0;
    for (int i = 0; i < 4; ++i, ++p_) {
      char c = *p_;
      int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (digit < 0) return false;
      *code = (*code << 4) | uint32_t(digit);
    }
    return true;
  }
  static void Utf8(uint32_t code, std::string* out) {
    if (code < 0x80) { out->push_back(char(code)); return; }
    if (code < 0x800) {
      out->push_back(char(0xc0 | (code >> 6)));
    } else if (code < 0x10000) {
      out->push_back(char(0xe0 | (code >> 12)));
      out->push_back(char(0x80 | ((code >> 6) & 0x3f)));
    } else {
      out->push_back(char(0xf0 | (code >> 18)));
      out->push_back(char(0x80 | ((code >> 12) & 0x3f)));
      out->push_back(char(0x80 | ((code >> 6) & 0x3f)));
    }
    out->push_back(char(0x80 | (code & 0x3f)));
  }
  bool Escape(std::string* out) {
    if (p_ >= end_) return false;
    char c = *p_++;
    const char* simple = std::strchr("\"\\/bfnrt", c);
    if (c != 'u') {
      if (!simple || !c) return false;
      static const char kValue[] = "\"\\/\b\f\n\r\t";
      out->push_back(kValue[simple - "\"\\/bfnrt"]);
      return true;
    }
    uint32_t code;
    if (!Hex4(&code)) return false;
    if (code >= 0xd800 && code < 0xdc00) {  // a surrogate pair: \uD8xx\uDCxx
      uint32_t low;
      if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') return false;
      p_ += 2;
      if (!Hex4(&low) || low < 0xdc00 || low >= 0xe000) return false;
      code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
    }
    Utf8(code, out);
    return true;
  }
  bool String(std::string* out) {
    if (!Consume('"')) return false;
    out->clear();
    while (p_ < end_ && *p_ != '"') {
      if (*p_ == '\\') {
        ++p_;
        if (!Escape(out)) return false;
      } else {
        out->push_back(*p_++);
      }
    }
    return Consume('"');
  }
  bool StringArray(std::vector<std::string>* out) {
    out->clear();
    if (!Consume('[')) return false;
    if (Consume(']')) return true;
    do {
      out->emplace_back();
      if (!String(&out->back())) return false;
    } while (Consume(','));
    return Consume(']');
  }
  // Any value we do not need (numbers, the "extra" object, ...); depth-limited.
  bool Skip(int depth) {
    Space();
    if (p_ >= end_ || depth > 64) return false;
    char c = *p_;
    if (c == '"') { std::string ignored; return String(&ignored); }
    if (c == '{' || c == '[') {
      char close = c == '{' ? '}' : ']';
      ++p_;
      if (Consume(close)) return true;
      do {
        if (c == '{') {
          std::string key;
          if (!String(&key) || !Consume(':')) return false;
        }
        if (!Skip(depth + 1)) return false;
      } while (Consume(','));
      return Consume(close);
    }
    const char* start = p_;
    while (p_ < end_ && std::strchr("+-.0123456789eEtruefalsn", *p_) && *p_) ++p_;
    return p_ > start;
  }

  const char* p_;
  const char* end_;
  std::string sha256_;
};

}  // namespace

bool ReadExecutable(const std::string& data, Executable* out, std::string* error) {
  const std::string magic = NEURONCLI_EXE_MAGIC;
  if (data.empty()) {
    *error = "has no executable (it was never compiled): recompile the model with neuron-compile";
    return false;
  }
  if (data.size() < kFixedSize || data.compare(0, kMagicSize, magic) != 0) {
    *error = "its executable is not a neuroncli program (unknown magic number; e.g. a NEFF from "
             "AWS's neuron-cc): it needs Neuron hardware and AWS's runtime; compile the "
             "original model with neuron-compile to run it here";
    return false;
  }
  uint32_t version = LittleEndian(data, kMagicSize, 2);
  if (version != NEURONCLI_EXE_VERSION) {
    *error = "executable format version " + std::to_string(version) + " is not supported "
             "(this library reads version " + std::to_string(NEURONCLI_EXE_VERSION) +
             "): recompile the model";
    return false;
  }
  size_t end = kFixedSize + LittleEndian(data, kMagicSize + 2, 4);
  if (end > data.size()) {
    *error = "executable is truncated (header cut short): recompile the model";
    return false;
  }
  JsonReader reader(data.data() + kFixedSize, data.data() + end);
  if (!reader.Object(out) || reader.sha256().empty()) {
    *error = "executable header is corrupt: recompile the model";
    return false;
  }
  if (Sha256Hex(data.data() + end, data.size() - end) != reader.sha256()) {
    *error = "executable payload does not match its checksum (corrupt or tampered): "
             "recompile the model";
    return false;
  }
  out->payload_offset = end;
  return true;
}

}  // namespace neuroncli
