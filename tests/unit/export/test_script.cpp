// train_gpt.py (export/script.h): the latin-1 string literal, the recorded
// configuration, and the code archive carried whole.
#include <gtest/gtest.h>

#include <random>

#include "helpers.h"
#include "pgolf/core/codec.h"
#include "pgolf/export/code_archive.h"
#include "pgolf/export/script.h"

using namespace pgolf;

// The escapes written out by hand; every other byte stands for itself.
TEST(Script, Latin1LiteralEscapesOnlyWhatALiteralCannotHold) {
  using namespace std::string_literals;
  const std::pair<std::string, std::string> cases[] = {
      {"", ""},
      {"a\"b\\c", "a\\\"b\\\\c"},
      {"\n\r", "\\n\\r"},
      {"\0"s, "\\0"},
      {"\0" "9"s, "\\09"},          // 9 is no octal digit: \0 stays short
      {"\0" "7"s, "\\x007"},        // \07 would be one character, BEL
      {"\0\0"s, "\\0\\0"},
      {"\xff\x80\x7f\t'"s, "\xff\x80\x7f\t'"},
  };
  for (const auto& [bytes, body] : cases) {
    EXPECT_EQ(latin1_literal(bytes), body);
    EXPECT_EQ(latin1_literal_value(body), bytes) << body;
  }
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  std::mt19937 gen(7);
  for (int n = 0; n < 2000; ++n) all += static_cast<char>(gen() % 10 == 0 ? 0 : gen() & 0xff);
  const std::string body = latin1_literal(all);
  EXPECT_EQ(body.find_first_of(std::string("\n\r\0"s)), std::string::npos);
  EXPECT_EQ(latin1_literal_value(body), all);
  for (const std::string& bad : {"a\"b"s, "\\q"s, "ab\\"s, "\\01"s, "\\x01"s, "a\nb"s, "a\0b"s})
    EXPECT_THROW(latin1_literal_value(bad), std::runtime_error) << bad;
}

// The keys that differ from the defaults, less the ones each run sets itself.
TEST(Script, RecordsTheConfigurationLessPerRunKeys) {
  Config c;
  EXPECT_EQ(recorded_config(c), "");
  c.run.seed = 42;
  c.run.run_id = "s42";
  c.run.log_dir = "/tmp/x";
  EXPECT_EQ(recorded_config(c), "");
  c.model.num_layers = 10;
  c.run.data_path = "/data/a \"b\" #2";  // quoted, as format_config() quotes it, so that it reads back
  const std::string text = recorded_config(c);
  EXPECT_EQ(text, "DATA_PATH='/data/a \"b\" #2'\nNUM_LAYERS=10\n");
  test::TempDir dir;  // train_gpt.py writes it to config.env, which pgolf reads as a config file
  test::write_text(dir.file("config.env"), text);
  Config read;
  apply_config_file(read, dir.file("config.env"));
  EXPECT_EQ(read.run.data_path, c.run.data_path);
  EXPECT_EQ(read.model.num_layers, 10);
  c.run.tokenizer_path = "a\nb";
  EXPECT_THROW(recorded_config(c), std::runtime_error);
}

// The script carries the configuration (quotes and backslashes escaped for
// Python's """) and the xz code archive, which reads back as the tar.
TEST(Script, CarriesTheConfigurationAndTheArchive) {
  const CodeArchive xz = code_archive(Codec::Xz);
  const std::string script = submission_script("A=\"q\"\\\nB=2\n", xz.bytes);
  EXPECT_NE(script.find("C=\"\"\"A=\\\"q\\\"\\\\\nB=2\n\"\"\""), std::string::npos) << script.substr(0, 800);
  EXPECT_NE(script.find("\nP=\"" + latin1_literal(xz.bytes) + "\"\n"), std::string::npos);
  EXPECT_EQ(script_archive_tar(script, "x.py"), code_tar());
  EXPECT_EQ(script.size(), submission_script("A=\"q\"\\\nB=2\n", xz.bytes).size());
  Config c;
  c.model.num_layers = 10;
  EXPECT_NE(submission_script(c).find("C=\"\"\"NUM_LAYERS=10\n\"\"\""), std::string::npos);
  try {
    script_archive_tar("print(1)\n", "other.py");
    FAIL() << "no archive";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("'other.py': no code archive"), std::string::npos) << e.what();
  }
  try {
    script_archive_tar("C=\"\"\"\"\"\"\nP=\"\\\"xz\\\"\"\n", "bad.py");
    FAIL() << "not xz";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("'bad.py': cannot read the code archive"), std::string::npos) << e.what();
  }
}
