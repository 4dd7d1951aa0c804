// train_gpt.py (export/script.h): base85 as Python's, the recorded
// configuration, and the code archive carried whole.
#include <gtest/gtest.h>

#include <random>

#include "helpers.h"
#include "pgolf/core/codec.h"
#include "pgolf/export/code_archive.h"
#include "pgolf/export/script.h"

using namespace pgolf;

// Python 3's base64.b85encode gave these (an independent implementation).
TEST(Script, Base85IsPythonsB85) {
  const std::pair<std::string, std::string> cases[] = {
      {"", ""},
      {"h", "Xa"},
      {"he", "Xk`"},
      {"hel", "Xk}~"},
      {"hell", "Xk~0{"},
      {"hello", "Xk~0{Zv"},
      {std::string("\x00\x01\x02\x03\x04\x05\x06\x07\x08", 9), "009C61O)~M2m"},
      {"\xff\xff\xff\xff", "|NsC0"},
      {std::string(5, '\0'), "0000000"},
  };
  for (const auto& [bytes, text] : cases) {
    EXPECT_EQ(b85encode(bytes), text);
    EXPECT_EQ(b85decode(text), bytes) << text;
  }
  std::mt19937 gen(7);
  for (std::size_t n = 0; n < 70; ++n) {
    std::string bytes(n, '\0');
    for (char& c : bytes) c = static_cast<char>(gen() & 0xff);
    const std::string text = b85encode(bytes);
    EXPECT_EQ(text.size(), n / 4 * 5 + (n % 4 ? n % 4 + 1 : 0));
    EXPECT_EQ(text.find_first_of("\"\\'\n"), std::string::npos);  // fits a Python string literal as it is
    EXPECT_EQ(b85decode(text), bytes) << n;
  }
  EXPECT_THROW(b85decode("Xk~0\""), std::runtime_error);  // outside the alphabet
  EXPECT_THROW(b85decode("~~~~~"), std::runtime_error);   // past 2^32
  EXPECT_THROW(b85decode("Xk~0{Z"), std::runtime_error);  // a last group of one character
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
  EXPECT_NE(script.find("\nP=\"" + b85encode(xz.bytes) + "\"\n"), std::string::npos);
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
    script_archive_tar("C=\"\"\"\"\"\"\nP=\"Xk~0{Zv\"\n", "bad.py");
    FAIL() << "not xz";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("'bad.py': cannot read the code archive"), std::string::npos) << e.what();
  }
}
