#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <sstream>
#include <vector>

#include "pgolf/config/config.h"
#include "pgolf/config/python_names.h"
#include "pgolf/core/io.h"

using namespace pgolf;

namespace {

struct Row {
  std::string name, key, note;
  bool operator==(const Row& o) const { return name == o.name && key == o.key && note == o.note; }
};

std::ostream& operator<<(std::ostream& out, const Row& r) { return out << r.name << " | " << r.key << " | " << r.note; }

std::string unquoted(std::string cell) {
  cell.erase(std::remove(cell.begin(), cell.end(), '`'), cell.end());
  return cell;
}

// The rows of the first table under "## Variable names": | `NAME` | `KEY` or none | note |.
std::vector<Row> doc_rows(const std::string& markdown) {
  std::istringstream in(markdown);
  std::string line;
  while (std::getline(in, line) && line != "## Variable names") {
  }
  while (std::getline(in, line) && line.rfind("| Python name |", 0) != 0) {
  }
  std::getline(in, line);  // |---|---|---|
  std::vector<Row> rows;
  while (std::getline(in, line) && line.rfind("| ", 0) == 0) {
    std::vector<std::string> cells;
    const std::string body = line.substr(2, line.size() - 4);  // without the outer "| " and " |"
    for (std::size_t start = 0;;) {
      const std::size_t bar = body.find(" | ", start);
      cells.push_back(body.substr(start, bar - start));
      if (bar == std::string::npos) break;
      start = bar + 3;
    }
    EXPECT_EQ(cells.size(), 3u) << line;
    if (cells.size() != 3) continue;
    const std::string key = unquoted(cells[1]);
    rows.push_back({unquoted(cells[0]), key == "none" ? "" : key, cells[2]});
  }
  return rows;
}

}  // namespace

TEST(PythonNames, EveryRowNamesAPgolfKeyOrSaysWhyThereIsNone) {
  std::set<std::string> seen;
  for (const PythonName& p : python_names()) {
    EXPECT_TRUE(seen.insert(p.name).second) << p.name << " is listed twice";
    EXPECT_EQ(find_config_key(p.name), nullptr) << p.name << " is a pgolf key: pgolf reads it";
    if (*p.pgolf_key) {
      EXPECT_NE(find_config_key(p.pgolf_key), nullptr) << p.name << " -> " << p.pgolf_key << ", which is not a pgolf key";
      EXPECT_EQ(std::string_view(p.note).find_first_of("()"), std::string_view::npos)
          << p.name << ": explain_python_name puts the note in parentheses";
    } else {
      EXPECT_STRNE(p.note, "") << p.name << " has no pgolf key and no reason";
    }
    EXPECT_EQ(find_python_name(p.name), &p);
  }
  EXPECT_EQ(find_python_name("MATRIX_LR"), nullptr);
}

TEST(PythonNames, ExplanationNamesTheKeyAndTheDifference) {
  EXPECT_EQ(explain_python_name(*find_python_name("SWA_INTERVAL")), "SWA_INTERVAL is train_gpt.py's name; pgolf's key is SWA_EVERY");
  EXPECT_EQ(explain_python_name(*find_python_name("QAT_FRACTION")),
            "QAT_FRACTION is train_gpt.py's name; pgolf's key is QAT_START_FRAC (QAT_FRACTION is the final part of the run "
            "that uses QAT: QAT_START_FRAC = 1 - QAT_FRACTION)");
  EXPECT_EQ(explain_python_name(*find_python_name("MUON_BETA2")),
            "MUON_BETA2 is train_gpt.py's name; pgolf has no equivalent: #219 reads it and uses it nowhere: Muon keeps no "
            "second moment");
}

// docs/FROM_PYTHON.md shows exactly the table load_config uses.
TEST(PythonNames, TheDocsTableListsExactlyTheCodeTable) {
  const std::vector<Row> docs = doc_rows(read_file(std::string(PGOLF_SOURCE_DIR) + "/docs/FROM_PYTHON.md"));
  std::vector<Row> code;
  for (const PythonName& p : python_names()) code.push_back({p.name, p.pgolf_key, p.note});
  EXPECT_EQ(docs.size(), code.size()) << "rows in docs/FROM_PYTHON.md and in python_names()";
  for (std::size_t i = 0; i < std::min(docs.size(), code.size()); ++i) EXPECT_EQ(docs[i], code[i]) << "row " << i + 1;
}
