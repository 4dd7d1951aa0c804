// Whether TOKENIZER_PATH is the tokenizer that made the shards in DATA_PATH
// (docs/RELIABILITY.md ("Data")). val_bpb counts bytes through the
// tokenizer's byte tables, so another tokenizer of the same vocabulary size
// would give a wrong score without any other error.
#pragma once
#include <string>

namespace pgolf {

// The record `pgolf shard` and `pgolf download` leave beside the shards:
// DATA_PATH/tokenizer_record.txt, naming the tokenizer file that made them
// with its size and CRC-32 (key=value lines).
std::string tokenizer_record_path(const std::string& data_path);
// Writes the record of the tokenizer at `tokenizer_path` into the folder `dir`, atomically.
void write_tokenizer_record(const std::string& dir, const std::string& tokenizer_path);

// Throws, naming TOKENIZER_PATH, DATA_PATH and the fix, unless both hold:
//  1. when DATA_PATH holds a record, it names this tokenizer's size and CRC-32;
//  2. the first 64 validation documents (those after a BOS, up to 64 Ki
//     tokens in all, passing over any longer than 16 Ki tokens) decode to
//     text that the tokenizer encodes to the same ids again; up to a quarter
//     of them may fail where the normaliser changes their decoded text once
//     more (rare text: tokenizer_check.cpp says which).
// Called after the validation ids were checked against VOCAB_SIZE.
void check_tokenizer_made_shards(const std::string& tokenizer_path, const std::string& data_path);

// TOKENIZER_CHECK: `enabled` runs check_tokenizer_made_shards and returns "";
// otherwise nothing is checked and the returned line, for the log, says so.
std::string check_tokenizer_unless_disabled(const std::string& tokenizer_path, const std::string& data_path, bool enabled);

}  // namespace pgolf
