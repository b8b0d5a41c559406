#include "eval/report.h"

#include "core/system.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <system_error>
#include <utility>

namespace splitinfer::eval {

std::string GnuplotQuote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'') q += '\'';  // the only escape inside single quotes: the quote doubled
    q += c;
  }
  return q + "'";
}

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Study order: references first, then the codecs roughly from cheapest to most trained, then
// the input-image baselines. Anything else sorts after these, alphabetically.
const std::vector<std::string> kMethodOrder = {"float", "ptq", "tail", "tcl", "qat", "ae", "qcnet",
                                               "shared_ae", "per_point_ae", "input_png", "input_webp", "input_jpeg"};
const std::vector<std::string> kCoderOrder = {"none", "lzma", "zstd", "cabac", "png", "webp"};  // then jpeg-qN
// Byte budgets of the summary table: powers of two from 32 bytes (or from the cheapest row's
// size, for larger inputs) up to the cheapest input image, at least to 256 bytes: 32..256 (and
// 512) for 28x28 inputs, 512..16384 for a detector's 128x128 scenes.
std::vector<double> Budgets(const std::vector<ResultRow>& sorted) {
  double cheapest = 0, input = 0;
  for (const auto& r : sorted) {
    if (!(r.bytes_per_image > 0)) continue;
    if (r.method.rfind("input_", 0) == 0) {
      if (input == 0 || r.bytes_per_image < input) input = r.bytes_per_image;
    } else if (cheapest == 0 || r.bytes_per_image < cheapest) {
      cheapest = r.bytes_per_image;
    }
  }
  double lo = 32;
  while (lo < cheapest && lo < 1e9) lo *= 2;
  std::vector<double> budgets;
  for (double b = lo; budgets.size() < 12 && (b <= 256 || b < 2 * input); b *= 2) {
    budgets.push_back(b);
    if (b >= input && b > 256) break;
  }
  return budgets;
}
// A bad JSON value is quoted in the error, cut to this many characters (a line can be long).
constexpr size_t kMaxQuoted = 60;

size_t Rank(const std::vector<std::string>& order, const std::string& name) {
  return static_cast<size_t>(std::find(order.begin(), order.end(), name) - order.begin());
}

// Canonical order first, unknown names after them alphabetically.
bool CanonicalLess(const std::vector<std::string>& order, const std::string& a, const std::string& b) {
  const size_t ra = Rank(order, a), rb = Rank(order, b);
  if (ra != rb) return ra < rb;
  return a < b;
}

bool IsInputBaseline(const std::string& method) { return method.rfind("input_", 0) == 0; }

std::string Quoted(const json& v) {
  std::string s = v.dump();
  if (s.size() > kMaxQuoted) s = s.substr(0, kMaxQuoted) + "...";
  return s;
}

// --- JSON ---------------------------------------------------------------------------------

Status GetString(const json& j, const char* key, bool required, std::string* out, const std::string& origin) {
  auto it = j.find(key);
  if (it == j.end()) return required ? DataLoss(origin + ": missing key \"" + key + "\"") : Status::Ok();
  if (!it->is_string()) return DataLoss(origin + ": key \"" + key + "\" must be a string, got " + Quoted(*it));
  *out = it->get<std::string>();
  return Status::Ok();
}

Status GetInt(const json& j, const char* key, bool required, int64_t* out, const std::string& origin) {
  auto it = j.find(key);
  if (it == j.end()) return required ? DataLoss(origin + ": missing key \"" + key + "\"") : Status::Ok();
  const bool fits = it->is_number_integer() &&
                    !(it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX));
  if (!fits) return DataLoss(origin + ": key \"" + key + "\" must be an integer, got " + Quoted(*it));
  *out = it->get<int64_t>();
  return Status::Ok();
}

Status GetDouble(const json& j, const char* key, bool required, double* out, const std::string& origin) {
  auto it = j.find(key);
  if (it == j.end()) return required ? DataLoss(origin + ": missing key \"" + key + "\"") : Status::Ok();
  if (!it->is_number() || !std::isfinite(it->get<double>())) {
    return DataLoss(origin + ": key \"" + key + "\" must be a finite number, got " + Quoted(*it));
  }
  *out = it->get<double>();
  return Status::Ok();
}

// The limits a row must satisfy, shared by the writer (INVALID_ARGUMENT: our bug) and the
// reader (DATA_LOSS: a damaged log). Returns "" when the row is fine.
std::string RowProblem(const ResultRow& r) {
  if (r.run.empty()) return "key \"run\" must not be empty";
  if (r.method.empty()) return "key \"method\" must not be empty";
  if (r.bits < 0 || r.bits > 32) return "key \"bits\" must be in [0, 32], got " + std::to_string(r.bits);
  if (r.metric != "top1" && r.metric != "ap50") return "key \"metric\" must be top1 or ap50, got \"" + r.metric + "\"";
  const std::pair<std::string, double> percents[] = {{r.metric, r.score}, {"float_" + r.metric, r.float_score}};
  for (const auto& [key, v] : percents) {
    if (!std::isfinite(v) || v < 0 || v > 100) {
      return "key \"" + key + "\" must be a percentage in [0, 100]";
    }
  }
  if (r.holdout_score != -1 && !(std::isfinite(r.holdout_score) && r.holdout_score >= 0 && r.holdout_score <= 100)) {
    return "key \"holdout_" + r.metric + "\" must be a percentage in [0, 100]";
  }
  if (r.metric == "ap50" && !(std::isfinite(r.ap) && r.ap >= 0 && r.ap <= 100)) {
    return "key \"ap\" must be a percentage in [0, 100]";
  }
  const std::pair<const char*, double> sizes[] = {{"bytes_per_image", r.bytes_per_image},
                                                  {"header_bytes", r.header_bytes},
                                                  {"order0_bytes", r.order0_bytes},
                                                  {"train_seconds", r.train_seconds}};
  for (const auto& [key, v] : sizes) {
    if (!std::isfinite(v) || v < 0) return std::string("key \"") + key + "\" must be a finite number >= 0";
  }
  const std::pair<const char*, int64_t> counts[] = {
      {"images", r.images}, {"node_params", r.node_params}, {"server_params", r.server_params}};
  for (const auto& [key, v] : counts) {
    if (v < 0) return std::string("key \"") + key + "\" must be >= 0";
  }
  return "";
}

// --- files --------------------------------------------------------------------------------

Status WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return IoError("cannot open " + path + " for writing: " + std::strerror(errno));
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  out.close();
  if (!out) return IoError("cannot write " + path + ": " + std::strerror(errno));
  return Status::Ok();
}

Result<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return IoError("cannot open " + path + ": " + std::strerror(errno));
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return IoError("cannot read " + path + ": " + std::strerror(errno));
  return content;
}

// A run killed inside AppendRow leaves a line without its newline. Appending after it would
// fuse the next row onto it and turn a harmless tail into corruption in the middle of the log,
// so the fragment is cut off (or, if it is complete JSON that only lacks the newline, ended).
Status RepairLastLine(const std::string& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) return IoError("cannot stat " + path + ": " + ec.message());
  if (size == 0) return Status::Ok();
  {
    std::ifstream in(path, std::ios::binary);
    if (!in) return IoError("cannot open " + path + ": " + std::strerror(errno));
    in.seekg(-1, std::ios::end);
    char last = 0;
    if (!in.get(last)) return IoError("cannot read " + path);
    if (last == '\n') return Status::Ok();
  }
  SI_ASSIGN_OR_RETURN(const std::string content, ReadFile(path));
  const size_t nl = content.rfind('\n');
  const size_t keep = nl == std::string::npos ? 0 : nl + 1;
  if (json::accept(content.substr(keep))) {
    std::ofstream out(path, std::ios::binary | std::ios::app);
    out << '\n';
    out.close();
    if (!out) return IoError("cannot append to " + path + ": " + std::strerror(errno));
    return Status::Ok();
  }
  std::cerr << "warning: " << path << ": dropping a partial last line (" << content.size() - keep
            << " bytes) left by an interrupted write\n";
  fs::resize_file(path, keep, ec);
  if (ec) return IoError("cannot truncate " + path + ": " + ec.message());
  return Status::Ok();
}

std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) {
    if (c == '"') q += '"';
    q += c;
  }
  return q + "\"";
}

// Shortest text that reads back to the same double.
std::string Num(double v) { return json(v).dump(); }

// --- markdown -----------------------------------------------------------------------------

std::string Fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string Cell(const std::string& s) {
  if (s.empty()) return "-";
  std::string out;
  for (char c : s) {
    if (c == '|') out += "\\|";
    else if (c == '\n' || c == '\r') out += ' ';
    else out += c;
  }
  return out;
}

std::string BitsCell(int bits) { return bits == 0 ? "-" : std::to_string(bits); }
std::string DropCell(const ResultRow& r) { return r.float_score > 0 ? Fixed(r.float_score - r.score, 2) : "n/a"; }

// What the score column is called: the rows' task metric (a study has one model, so one task).
std::string MetricLabel(const std::vector<ResultRow>& rows) {
  return !rows.empty() && rows[0].metric == "ap50" ? "AP50 %" : "top-1 %";
}

// The full table's order; splits keep the order in which rows first name them, which is the
// model's depth order in the study (alphabetical would put layer10 before layer2).
std::vector<ResultRow> SortedRows(const std::vector<ResultRow>& rows) {
  std::map<std::string, size_t> split_rank;
  for (const auto& r : rows) split_rank.emplace(r.split, split_rank.size());
  std::vector<ResultRow> sorted = rows;
  std::stable_sort(sorted.begin(), sorted.end(), [&](const ResultRow& a, const ResultRow& b) {
    if (a.method != b.method) return CanonicalLess(kMethodOrder, a.method, b.method);
    if (a.split != b.split) return split_rank[a.split] < split_rank[b.split];
    if (a.bits != b.bits) return a.bits < b.bits;
    if (a.granularity != b.granularity) return a.granularity < b.granularity;
    if (a.coder != b.coder) return CanonicalLess(kCoderOrder, a.coder, b.coder);
    return a.run < b.run;
  });
  return sorted;
}

// Highest score, ties to the smaller frame; rows must already be in report order.
const ResultRow* Best(const std::vector<ResultRow>& sorted, double budget) {
  const ResultRow* best = nullptr;
  for (const auto& r : sorted) {
    if (budget > 0 && (r.bytes_per_image <= 0 || r.bytes_per_image > budget)) continue;
    if (best == nullptr || r.score > best->score ||
        (r.score == best->score && r.bytes_per_image < best->bytes_per_image)) {
      best = &r;
    }
  }
  return best;
}

std::string SummaryTable(const std::vector<ResultRow>& sorted) {
  std::ostringstream md;
  md << "| budget | method | split | bits | coder | " << MetricLabel(sorted) << " | drop pp | bytes/image |\n"
     << "| --- | --- | --- | ---: | --- | ---: | ---: | ---: |\n";
  std::vector<std::pair<std::string, double>> lines;
  for (double b : Budgets(sorted)) lines.emplace_back("<= " + Fixed(b, 0) + " B", b);
  lines.emplace_back("overall", 0);
  for (const auto& [label, budget] : lines) {
    const ResultRow* r = Best(sorted, budget);
    if (r == nullptr) {
      md << "| " << label << " | (nothing within budget) | | | | | | |\n";
      continue;
    }
    md << "| " << label << " | " << Cell(r->method) << " | " << Cell(r->split) << " | " << BitsCell(r->bits) << " | "
       << Cell(r->coder) << " | " << Fixed(r->score, 2) << " | " << DropCell(*r) << " | "
       << Fixed(r->bytes_per_image, 1) << " |\n";
  }
  return md.str();
}

std::string FullTable(const std::vector<ResultRow>& sorted) {
  std::ostringstream md;
  md << "| run | method | split | bits | granularity | coder | " << MetricLabel(sorted)
     << " | drop pp | bytes/image | header B | order-0 B "
        "| node params | server params |\n"
     << "| --- | --- | --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
  for (const auto& r : sorted) {
    md << "| " << Cell(r.run) << " | " << Cell(r.method) << " | " << Cell(r.split) << " | " << BitsCell(r.bits)
       << " | " << Cell(r.granularity) << " | " << Cell(r.coder) << " | " << Fixed(r.score, 2) << " | "
       << DropCell(r) << " | " << Fixed(r.bytes_per_image, 1) << " | " << Fixed(r.header_bytes, 1) << " | "
       << Fixed(r.order0_bytes, 1) << " | " << r.node_params << " | " << r.server_params << " |\n";
  }
  return md.str();
}

// --- plots --------------------------------------------------------------------------------

std::string G(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

struct Series {
  std::string title;
  std::string style;  // gnuplot "with ..." clause
  std::vector<std::pair<double, double>> points;
  std::vector<std::string> notes;  // one per point, written as a comment in the .dat file
};

struct Plot {
  std::string name;     // file stem under plots/
  std::string caption;  // alt text in report.md
  std::string setup;    // gnuplot commands after terminal/output
  std::vector<Series> series;
  std::optional<std::pair<std::string, double>> hline;  // (title, y)
  std::string empty_reason;  // why there is nothing to plot
};

bool HasPoints(const Plot& p) {
  return std::any_of(p.series.begin(), p.series.end(), [](const Series& s) { return !s.points.empty(); });
}

// The float model's score: the best "float" row, else the first recorded float score.
std::optional<double> FloatScore(const std::vector<ResultRow>& rows) {
  std::optional<double> best;
  for (const auto& r : rows) {
    if (r.method == "float" && (!best || r.score > *best)) best = r.score;
  }
  if (best) return best;
  for (const auto& r : rows) {
    if (r.float_score > 0) return r.float_score;
  }
  return std::nullopt;
}

std::vector<std::string> Methods(const std::vector<ResultRow>& rows) {
  std::vector<std::string> methods;
  for (const auto& r : rows) {
    if (std::find(methods.begin(), methods.end(), r.method) == methods.end()) methods.push_back(r.method);
  }
  std::sort(methods.begin(), methods.end(),
            [](const std::string& a, const std::string& b) { return CanonicalLess(kMethodOrder, a, b); });
  return methods;
}

// Per method, its most accurate row set against shipping the input image losslessly (the
// cheapest input baseline): the study's "does splitting pay at all" question, answered per
// method, including where it does not.
std::string MethodsVsInput(const std::vector<ResultRow>& sorted) {
  const ResultRow* input = nullptr;
  for (const auto& r : sorted) {
    if (IsInputBaseline(r.method) && r.bytes_per_image > 0 &&
        (input == nullptr || r.bytes_per_image < input->bytes_per_image)) {
      input = &r;
    }
  }
  std::ostringstream md;
  if (input == nullptr) return "No input-image baseline in this study.\n";
  // A detector's study also has JPEG at the quality that keeps the float AP50 (lossy).
  const bool lossy = input->method == "input_jpeg";
  md << "The cheapest " << (lossy ? "input image (" + Cell(input->coder) + ", lossy)" : std::string("lossless input image"))
     << " is " << Cell(input->method) << ": " << Fixed(input->bytes_per_image, 1) << " bytes at " << Fixed(input->score, 2)
     << " % (the float model on the server" << (lossy ? ", on the decoded JPEG" : "") << ").\n\n"
     << "| method | split | bits | coder | " << MetricLabel(sorted) << " | drop pp | bytes/image | vs the input image |\n"
     << "| --- | --- | ---: | --- | ---: | ---: | ---: | --- |\n";
  for (const auto& method : Methods(sorted)) {
    if (method == "float" || IsInputBaseline(method)) continue;
    std::vector<ResultRow> mine;
    for (const auto& r : sorted) {
      if (r.method == method && r.bytes_per_image > 0) mine.push_back(r);
    }
    const ResultRow* best = Best(mine, 0);
    if (best == nullptr) continue;
    std::string verdict;
    const double delta = best->score - input->score;
    if (best->bytes_per_image >= input->bytes_per_image) {
      verdict = "does not beat it: more bytes";
    } else if (delta >= 0) {
      verdict = "beats it: " + Fixed(input->bytes_per_image / best->bytes_per_image, 1) + "x fewer bytes, no accuracy lost";
    } else {
      verdict = "does not beat it at equal accuracy: " + Fixed(input->bytes_per_image / best->bytes_per_image, 1) +
                "x fewer bytes but " + Fixed(-delta, 2) + " pp less accurate";
    }
    md << "| " << Cell(method) << " | " << Cell(best->split) << " | " << BitsCell(best->bits) << " | "
       << Cell(best->coder) << " | " << Fixed(best->score, 2) << " | " << DropCell(*best) << " | "
       << Fixed(best->bytes_per_image, 1) << " | " << verdict << " |\n";
  }
  return md.str();
}

// ---------------------------------------------------------------- settings, seeds, held-out choice

}  // namespace

std::string SettingOf(const std::string& run) {
  // "tcl_b2_seed3_recal" -> "tcl_b2_recal": the seed tag the study's `seed: [...]` lists add.
  static const std::regex kSeed("_seed[0-9]+(?=_|$)");
  return std::regex_replace(run, kSeed, "");
}

namespace {

// One setting (a run without its seed tag) with one coder: its rows, one per seed.
struct Setting {
  std::string name, method, split, granularity, coder;
  int bits = 0;
  std::vector<const ResultRow*> rows;
  double Mean(double ResultRow::*field) const {
    double sum = 0;
    for (const ResultRow* r : rows) sum += r->*field;
    return sum / static_cast<double>(rows.size());
  }
  // The smallest and largest of a field over the seeds.
  std::pair<double, double> Extent(double ResultRow::*field) const {
    const auto [lo, hi] = std::minmax_element(rows.begin(), rows.end(), [field](const ResultRow* a, const ResultRow* b) {
      return a->*field < b->*field;
    });
    return {(*lo)->*field, (*hi)->*field};
  }
  bool HasHoldout() const {
    return std::all_of(rows.begin(), rows.end(), [](const ResultRow* r) { return r->holdout_score >= 0; });
  }
};

// Every trained or quantized setting with the coder that sends it in the fewest bytes (the
// coder is lossless: accuracy is the same with each).
std::vector<Setting> Settings(const std::vector<ResultRow>& sorted) {
  std::map<std::pair<std::string, std::string>, Setting> by_key;
  std::vector<std::pair<std::string, std::string>> order;
  for (const auto& r : sorted) {
    if (r.method == "float" || IsInputBaseline(r.method) || r.bytes_per_image <= 0) continue;
    const auto key = std::make_pair(SettingOf(r.run), r.coder);
    auto [it, fresh] = by_key.try_emplace(key);
    if (fresh) {
      it->second = Setting{key.first, r.method, r.split, r.granularity, r.coder, r.bits, {}};
      order.push_back(key);
    }
    it->second.rows.push_back(&r);
  }
  std::map<std::string, Setting> best;  // per setting: the fewest mean bytes
  std::vector<std::string> names;
  for (const auto& key : order) {
    const Setting& s = by_key.at(key);
    auto it = best.find(s.name);
    if (it == best.end()) {
      names.push_back(s.name);
      best.emplace(s.name, s);
    } else if (s.Mean(&ResultRow::bytes_per_image) < it->second.Mean(&ResultRow::bytes_per_image)) {
      it->second = s;
    }
  }
  std::vector<Setting> out;
  for (const auto& n : names) out.push_back(best.at(n));
  return out;
}

// "93.12 ± 0.21" (mean ± half the range) for several seeds, "93.12" for one.
std::string Spread(const Setting& s, double ResultRow::*field) {
  std::string text = Fixed(s.Mean(field), 2);
  if (s.rows.size() > 1) {
    const auto [lo, hi] = s.Extent(field);
    text += " ± " + Fixed((hi - lo) / 2, 2);
  }
  return text;
}

// Repeated settings: mean and spread over their seeds.
std::string SeedTable(const std::vector<Setting>& settings, const std::string& metric) {
  std::ostringstream md;
  md << "| setting | method | split | bits | coder | seeds | " << metric << " % mean ± half-range | min | max | held-out % | bytes/image |\n"
     << "| --- | --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n";
  for (const auto& s : settings) {
    if (s.rows.size() < 2) continue;
    md << "| " << Cell(s.name) << " | " << Cell(s.method) << " | " << Cell(s.split) << " | " << BitsCell(s.bits) << " | "
       << Cell(s.coder) << " | " << s.rows.size() << " | " << Spread(s, &ResultRow::score) << " | "
       << Fixed(s.Extent(&ResultRow::score).first, 2) << " | " << Fixed(s.Extent(&ResultRow::score).second, 2) << " | "
       << (s.HasHoldout() ? Spread(s, &ResultRow::holdout_score) : "-") << " | "
       << Fixed(s.Mean(&ResultRow::bytes_per_image), 1) << " |\n";
  }
  return md.str();
}

// Per method and bit width, the setting with the best mean held-out score (fewer bytes on a
// tie), and its test score: the test set is read once per chosen setting.
std::string HoldoutChoiceTable(const std::vector<Setting>& settings, const std::string& metric) {
  std::map<std::pair<std::string, int>, const Setting*> chosen;
  std::vector<std::pair<std::string, int>> order;
  for (const auto& s : settings) {
    if (!s.HasHoldout()) continue;
    const auto key = std::make_pair(s.method, s.bits);
    auto it = chosen.find(key);
    if (it == chosen.end()) {
      order.push_back(key);
      chosen[key] = &s;
      continue;
    }
    const double a = s.Mean(&ResultRow::holdout_score), b = it->second->Mean(&ResultRow::holdout_score);
    if (a > b || (a == b && s.Mean(&ResultRow::bytes_per_image) < it->second->Mean(&ResultRow::bytes_per_image))) {
      it->second = &s;
    }
  }
  std::ostringstream md;
  md << "| method | bits | chosen setting | split | granularity | coder | seeds | held-out % | test " << metric
     << " % | drop pp | bytes/image |\n"
     << "| --- | ---: | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |\n";
  for (const auto& key : order) {
    const Setting& s = *chosen.at(key);
    const double drop = s.Mean(&ResultRow::float_score) - s.Mean(&ResultRow::score);
    md << "| " << Cell(s.method) << " | " << BitsCell(s.bits) << " | " << Cell(s.name) << " | " << Cell(s.split) << " | "
       << Cell(s.granularity) << " | " << Cell(s.coder) << " | " << s.rows.size() << " | "
       << Spread(s, &ResultRow::holdout_score) << " | " << Spread(s, &ResultRow::score) << " | " << Fixed(drop, 2)
       << " | " << Fixed(s.Mean(&ResultRow::bytes_per_image), 1) << " |\n";
  }
  return md.str();
}

// "Top-1 accuracy" or "AP50": plot titles and axes.
std::string MetricTitle(const std::vector<ResultRow>& rows) {
  return !rows.empty() && rows[0].metric == "ap50" ? "AP50" : "Top-1 accuracy";
}
std::string MetricAxis(const std::vector<ResultRow>& rows) {
  return !rows.empty() && rows[0].metric == "ap50" ? "AP50 (%)" : "top-1 (%)";
}

Plot AccuracyVsBytes(const std::vector<ResultRow>& sorted) {
  Plot p;
  p.name = "accuracy_vs_bytes";
  p.caption = MetricTitle(sorted) + " vs bytes per image";
  p.setup =
      "set title '" + MetricTitle(sorted) + " vs bytes per image (smallest coder per run)'\n"
      "set xlabel 'bytes per image (log scale)'\nset ylabel '" + MetricAxis(sorted) + "'\n"
      "set logscale x 2\nset format x '%g'\nset grid\nset key outside right top\n";
  // Per run, the coder with the smallest frame: coders never change accuracy, so the others
  // are dominated points that would only clutter the plot.
  std::map<std::string, const ResultRow*> best_per_run;
  for (const auto& r : sorted) {
    if (r.bytes_per_image <= 0) continue;  // no measured size: cannot sit on a log axis
    auto [it, inserted] = best_per_run.emplace(r.run, &r);
    if (!inserted && r.bytes_per_image < it->second->bytes_per_image) it->second = &r;
  }
  for (const auto& method : Methods(sorted)) {
    Series s;
    s.title = method;
    s.style = IsInputBaseline(method) ? "points pt 5 ps 1.6" : "points pt 7 ps 1.1";
    for (const auto& r : sorted) {
      auto it = best_per_run.find(r.run);
      if (r.method != method || it == best_per_run.end() || it->second != &r) continue;
      s.points.emplace_back(r.bytes_per_image, r.score);
      s.notes.push_back(r.run + " " + r.coder);
    }
    if (!s.points.empty()) p.series.push_back(std::move(s));
  }
  if (auto f = FloatScore(sorted)) p.hline = std::make_pair("float model (" + Fixed(*f, 2) + " %)", *f);
  p.empty_reason = "no row has a measured bytes_per_image";
  return p;
}

Plot AccuracyVsBits(const std::vector<ResultRow>& sorted) {
  Plot p;
  p.name = "accuracy_vs_bits";
  p.caption = MetricTitle(sorted) + " vs bits";
  p.setup =
      "set title 'Best " + MetricTitle(sorted) + " per method and bit width'\n"
      "set xlabel 'bits per value'\nset ylabel '" + MetricAxis(sorted) + "'\n"
      "set xrange [0.5:8.5]\nset xtics 1\nset grid\nset key outside right top\n";
  for (const auto& method : Methods(sorted)) {
    std::map<int, const ResultRow*> best;
    for (const auto& r : sorted) {
      if (r.method != method || r.bits < 1 || r.bits > 8) continue;
      auto [it, inserted] = best.emplace(r.bits, &r);
      if (!inserted && r.score > it->second->score) it->second = &r;
    }
    Series s;
    s.title = method;
    s.style = "linespoints pt 7 ps 1.1";
    for (const auto& [bits, r] : best) {
      s.points.emplace_back(bits, r->score);
      s.notes.push_back(r->run + " " + r->coder);
    }
    if (!s.points.empty()) p.series.push_back(std::move(s));
  }
  if (auto f = FloatScore(sorted)) p.hline = std::make_pair("float model (" + Fixed(*f, 2) + " %)", *f);
  p.empty_reason = "no row has 1..8 bits";
  return p;
}

Plot BytesPerCoder(const std::vector<ResultRow>& rows) {
  Plot p;
  p.name = "bytes_per_coder";
  p.caption = "Bytes per image per lossless coder";
  p.empty_reason = "no ptq rows with 1..8 bits and a measured size";
  // One split and one granularity, so that the series differ only by coder.
  const ResultRow* first = nullptr;
  for (const auto& r : rows) {
    if (r.method == "ptq" && r.bits >= 1 && r.bits <= 8 && r.bytes_per_image > 0) {
      first = &r;
      break;
    }
  }
  if (first == nullptr) return p;
  const std::string split = first->split;
  auto in_split = [&](const ResultRow& r) {
    return r.method == "ptq" && r.split == split && r.bits >= 1 && r.bits <= 8 && r.bytes_per_image > 0;
  };
  const bool has_tensor = std::any_of(rows.begin(), rows.end(),
                                      [&](const ResultRow& r) { return in_split(r) && r.granularity == "tensor"; });
  std::vector<std::string> coders;
  std::map<std::pair<std::string, int>, std::pair<double, int>> sums;  // (coder, bits) -> (sum, n)
  for (const auto& r : rows) {
    if (!in_split(r) || (has_tensor && r.granularity != "tensor")) continue;
    if (std::find(coders.begin(), coders.end(), r.coder) == coders.end()) coders.push_back(r.coder);
    auto& [sum, n] = sums[{r.coder, r.bits}];
    sum += r.bytes_per_image;
    ++n;
  }
  std::sort(coders.begin(), coders.end(),
            [](const std::string& a, const std::string& b) { return CanonicalLess(kCoderOrder, a, b); });
  for (const auto& coder : coders) {
    Series s;
    s.title = coder;
    s.style = "linespoints pt 7 ps 1.1";
    for (const auto& [key, sn] : sums) {
      if (key.first != coder) continue;
      s.points.emplace_back(key.second, sn.first / sn.second);
      s.notes.push_back(std::to_string(sn.second) + " row(s)");
    }
    p.series.push_back(std::move(s));
  }
  const std::string scope = "ptq, split " + (split.empty() ? std::string("-") : split) + ", granularity " +
                            (has_tensor ? std::string("tensor") : std::string("any"));
  p.setup = "set title " + GnuplotQuote("Mean bytes per image per coder (" + scope + ")") +
            " noenhanced\n"
            "set xlabel 'bits per value'\nset ylabel 'bytes per image (log scale)'\n"
            "set xrange [0.5:8.5]\nset xtics 1\nset logscale y 2\nset format y '%g'\nset grid\n"
            "set key outside right top\n";
  return p;
}

// Writes NAME.dat and NAME.gp under plot_dir; returns the script's path. The script names its
// files without a folder (RunGnuplot runs it from its own).
Result<std::string> WritePlotFiles(const fs::path& plot_dir, const Plot& p) {
  const std::string dat = (plot_dir / (p.name + ".dat")).string();
  const std::string gp = (plot_dir / (p.name + ".gp")).string();
  std::ostringstream data;
  data << "# " << p.caption << ": one block per series (gnuplot 'index'), columns x y\n";
  for (size_t i = 0; i < p.series.size(); ++i) {
    if (i > 0) data << "\n\n";
    data << "# block " << i << ": " << p.series[i].title << "\n";
    for (size_t k = 0; k < p.series[i].points.size(); ++k) {
      std::string note = p.series[i].notes[k];
      std::replace(note.begin(), note.end(), '\n', ' ');  // a comment must stay on its line
      std::replace(note.begin(), note.end(), '\r', ' ');
      data << G(p.series[i].points[k].first) << " " << G(p.series[i].points[k].second) << "  # " << note << "\n";
    }
  }
  SI_RETURN_IF_ERROR(WriteFile(dat, data.str()));

  std::ostringstream script;
  script << "# Re-plot from this folder with: gnuplot " << p.name << ".gp\n"
         << "set terminal svg size 900,600 dynamic enhanced\n"
         << "set output " << GnuplotQuote(p.name + ".svg") << "\n"
         << p.setup;
  std::vector<std::string> items;
  for (size_t i = 0; i < p.series.size(); ++i) {
    // noenhanced: method names like shared_ae would otherwise print with a subscript.
    items.push_back(GnuplotQuote(p.name + ".dat") + " index " + std::to_string(i) + " using 1:2 with " + p.series[i].style +
                    " title " + GnuplotQuote(p.series[i].title) + " noenhanced");
  }
  if (p.hline) {
    items.push_back(G(p.hline->second) + " with lines dt 2 lw 1.5 lc rgb 'black' title " + GnuplotQuote(p.hline->first) +
                    " noenhanced");
  }
  script << "plot ";
  for (size_t i = 0; i < items.size(); ++i) script << (i > 0 ? ", \\\n     " : "") << items[i];
  script << "\nunset output\n";
  SI_RETURN_IF_ERROR(WriteFile(gp, script.str()));
  return gp;
}

}  // namespace

Status RunGnuplot(const std::string& gnuplot, const std::string& script, const std::string& svg) {
  const fs::path path = fs::absolute(script);
  SI_ASSIGN_OR_RETURN(ProgramResult run, RunProgram({gnuplot, "-e", "cd " + GnuplotQuote(path.parent_path().string()),
                                                     path.filename().string()}));
  if (run.exit_code != 0) {
    const std::string how = run.exit_code > 0 ? "exit code " + std::to_string(run.exit_code) : "killed by a signal";
    std::string output = run.output;
    if (output.size() > 2000) output = "..." + output.substr(output.size() - 2000);
    return Internal("gnuplot failed on " + script + " (" + how + "): " + output);
  }
  std::error_code ec;
  if (!fs::is_regular_file(svg, ec) || fs::file_size(svg, ec) == 0) {
    return Internal("gnuplot ran " + script + " but wrote no " + svg);
  }
  return Status::Ok();
}


nlohmann::json ToJson(const ResultRow& r) {
  json j = {{"run", r.run},
          {"method", r.method},
          {"split", r.split},
          {"bits", r.bits},
          {"granularity", r.granularity},
          {"coder", r.coder},
          {r.metric, r.score},
          {"float_" + r.metric, r.float_score},
          {"bytes_per_image", r.bytes_per_image},
          {"header_bytes", r.header_bytes},
          {"order0_bytes", r.order0_bytes},
          {"images", r.images},
          {"node_params", r.node_params},
          {"server_params", r.server_params},
          {"train_seconds", r.train_seconds},
          {"pipeline", r.pipeline}};
  if (r.holdout_score >= 0) j["holdout_" + r.metric] = r.holdout_score;
  if (r.metric != "top1") {  // rows of classifiers keep the keys they always had
    j["metric"] = r.metric;
    j["ap"] = r.ap;
  }
  return j;
}

Result<ResultRow> RowFromJson(const nlohmann::json& j, const std::string& origin) {
  if (!j.is_object()) return DataLoss(origin + ": a result row must be a JSON object, got " + Quoted(j));
  ResultRow r;
  int64_t bits = 0;
  SI_RETURN_IF_ERROR(GetString(j, "run", true, &r.run, origin));
  SI_RETURN_IF_ERROR(GetString(j, "method", true, &r.method, origin));
  SI_RETURN_IF_ERROR(GetString(j, "split", true, &r.split, origin));
  SI_RETURN_IF_ERROR(GetInt(j, "bits", true, &bits, origin));
  SI_RETURN_IF_ERROR(GetString(j, "granularity", true, &r.granularity, origin));
  SI_RETURN_IF_ERROR(GetString(j, "coder", true, &r.coder, origin));
  SI_RETURN_IF_ERROR(GetString(j, "metric", false, &r.metric, origin));
  if (r.metric.empty()) r.metric = "top1";
  if (r.metric != "top1" && r.metric != "ap50") {
    return DataLoss(origin + ": key \"metric\" must be top1 or ap50, got \"" + r.metric + "\"");
  }
  const std::string float_key = "float_" + r.metric;
  SI_RETURN_IF_ERROR(GetDouble(j, r.metric.c_str(), true, &r.score, origin));
  SI_RETURN_IF_ERROR(GetDouble(j, float_key.c_str(), true, &r.float_score, origin));
  SI_RETURN_IF_ERROR(GetDouble(j, "ap", r.metric == "ap50", &r.ap, origin));
  SI_RETURN_IF_ERROR(GetDouble(j, ("holdout_" + r.metric).c_str(), false, &r.holdout_score, origin));
  SI_RETURN_IF_ERROR(GetDouble(j, "bytes_per_image", true, &r.bytes_per_image, origin));
  SI_RETURN_IF_ERROR(GetInt(j, "images", true, &r.images, origin));
  SI_RETURN_IF_ERROR(GetDouble(j, "header_bytes", false, &r.header_bytes, origin));
  SI_RETURN_IF_ERROR(GetDouble(j, "order0_bytes", false, &r.order0_bytes, origin));
  SI_RETURN_IF_ERROR(GetInt(j, "node_params", false, &r.node_params, origin));
  SI_RETURN_IF_ERROR(GetInt(j, "server_params", false, &r.server_params, origin));
  SI_RETURN_IF_ERROR(GetDouble(j, "train_seconds", false, &r.train_seconds, origin));
  SI_RETURN_IF_ERROR(GetString(j, "pipeline", false, &r.pipeline, origin));
  if (bits < 0 || bits > 32) return DataLoss(origin + ": key \"bits\" must be in [0, 32], got " + std::to_string(bits));
  r.bits = static_cast<int>(bits);
  const std::string problem = RowProblem(r);
  if (!problem.empty()) return DataLoss(origin + ": " + problem);
  return r;
}

Status AppendRow(const std::string& jsonl_path, const ResultRow& row) {
  const std::string problem = RowProblem(row);
  if (!problem.empty()) {
    return InvalidArgument("cannot log result row \"" + row.run + "\" to " + jsonl_path + ": " + problem);
  }
  std::error_code ec;
  const bool exists = fs::exists(jsonl_path, ec);
  if (ec) return IoError("cannot stat " + jsonl_path + ": " + ec.message());
  if (exists) SI_RETURN_IF_ERROR(RepairLastLine(jsonl_path));
  // One write of the whole line: a kill can only leave a prefix of it, which both the reader
  // and the next append recognise by the missing newline.
  const std::string line = ToJson(row).dump() + "\n";
  std::ofstream out(jsonl_path, std::ios::binary | std::ios::app);
  if (!out) return IoError("cannot open " + jsonl_path + " for appending: " + std::strerror(errno));
  out.write(line.data(), static_cast<std::streamsize>(line.size()));
  out.close();
  if (!out) return IoError("cannot append to " + jsonl_path + ": " + std::strerror(errno));
  return Status::Ok();
}

Result<std::vector<ResultRow>> ReadRows(const std::string& jsonl_path) {
  std::error_code ec;
  const bool exists = fs::exists(jsonl_path, ec);
  if (ec) return IoError("cannot stat " + jsonl_path + ": " + ec.message());
  std::vector<ResultRow> rows;
  if (!exists) return rows;
  if (fs::is_directory(jsonl_path, ec)) return IoError(jsonl_path + " is a directory, not a results log");
  SI_ASSIGN_OR_RETURN(const std::string content, ReadFile(jsonl_path));
  size_t pos = 0;
  for (int64_t line_no = 1; pos < content.size(); ++line_no) {
    const size_t nl = content.find('\n', pos);
    const bool terminated = nl != std::string::npos;
    std::string line = content.substr(pos, terminated ? nl - pos : std::string::npos);
    pos = terminated ? nl + 1 : content.size();
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    const std::string origin = jsonl_path + " line " + std::to_string(line_no);
    const json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
      if (!terminated) {
        std::cerr << "warning: " << origin << ": skipping a truncated last line (" << line.size()
                  << " bytes; an interrupted run's partial write)\n";
        break;
      }
      return DataLoss(origin + ": not valid JSON; the results log is corrupt (fix or delete that line)");
    }
    SI_ASSIGN_OR_RETURN(ResultRow row, RowFromJson(j, origin));
    rows.push_back(std::move(row));
  }
  return rows;
}

Status WriteCsv(const std::string& path, const std::vector<ResultRow>& rows) {
  // The score columns are named by the task's metric (a study has one model, so one task); a
  // detector's study adds AP@[.50:.95] at the end.
  const std::string metric = rows.empty() ? "top1" : rows[0].metric;
  for (const auto& r : rows) {
    if (r.metric != metric) return InvalidArgument("rows of two metrics (" + metric + ", " + r.metric + ") in one table");
  }
  const bool detection = metric != "top1";
  // A study with a held-out split gets its column last (empty where a row has no score there).
  const bool holdout = std::any_of(rows.begin(), rows.end(), [](const ResultRow& r) { return r.holdout_score >= 0; });
  std::ostringstream csv;
  csv << "run,method,split,bits,granularity,coder," << metric << ",float_" << metric
      << ",bytes_per_image,header_bytes,order0_bytes,images,node_params,server_params,train_seconds,pipeline"
      << (detection ? ",ap" : "") << (holdout ? ",holdout_" + metric : "") << "\n";
  for (const auto& r : rows) {
    csv << CsvField(r.run) << ',' << CsvField(r.method) << ',' << CsvField(r.split) << ',' << r.bits << ','
        << CsvField(r.granularity) << ',' << CsvField(r.coder) << ',' << Num(r.score) << ',' << Num(r.float_score)
        << ',' << Num(r.bytes_per_image) << ',' << Num(r.header_bytes) << ',' << Num(r.order0_bytes) << ','
        << r.images << ',' << r.node_params << ',' << r.server_params << ',' << Num(r.train_seconds) << ','
        << CsvField(r.pipeline);
    if (detection) csv << ',' << Num(r.ap);
    if (holdout) csv << ',' << (r.holdout_score >= 0 ? Num(r.holdout_score) : "");
    csv << '\n';
  }
  return WriteFile(path, csv.str());
}

Status WriteJson(const std::string& path, const std::vector<ResultRow>& rows) {
  json array = json::array();
  for (const auto& r : rows) array.push_back(ToJson(r));
  return WriteFile(path, array.dump(2) + "\n");
}

Status WriteReport(const std::string& out_dir, const std::vector<ResultRow>& rows, const ReportOptions& options) {
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) return IoError("cannot create report directory " + out_dir + ": " + ec.message());
  const std::vector<ResultRow> sorted = SortedRows(rows);

  std::ostringstream md;
  md << "# " << options.title << "\n\n";
  if (!options.command.empty()) md << "Command:\n\n```\n" << options.command << "\n```\n\n";
  if (!options.machine.empty()) md << "Machine: " << options.machine << "\n\n";
  const bool detection = !rows.empty() && rows[0].metric == "ap50";
  const std::string metric = detection ? "AP50 (COCO's AP at IoU 0.5, x 100)" : "Top-1";
  md << rows.size() << " result rows. " << metric << " is in percent on the test set; \"drop\" is the float model's "
     << (detection ? "AP50" : "top-1")
     << " minus the row's, in percentage points; bytes are per image on the wire, frame header included.\n\n";
  md << "## Best accuracy per byte budget\n\n" << SummaryTable(sorted) << "\n";
  md << "## Each method against sending the input image\n\n" << MethodsVsInput(sorted) << "\n";
  const std::vector<Setting> settings = Settings(sorted);
  const std::string short_metric = detection ? "AP50" : "top-1";
  if (std::any_of(settings.begin(), settings.end(), [](const Setting& s) { return s.HasHoldout(); })) {
    md << "## Settings chosen on the held-out training images\n\n"
       << "Per method and bit width, the setting with the best mean score on the held-out training images "
          "(data.holdout: no run's fine-tuning or calibration used them; "
       << (options.holdout_note.empty() ? "the base model's own training may have, see its checkpoint's train_config"
                                        : options.holdout_note)
       << "), and its score on the test set.\n\n"
       << HoldoutChoiceTable(settings, short_metric) << "\n";
  }
  if (std::any_of(settings.begin(), settings.end(), [](const Setting& s) { return s.rows.size() > 1; })) {
    md << "## Repeated with several seeds\n\n"
       << "Each setting's rows over its seeds (runs named NAME_seed<N>), with the coder that sends it in the "
          "fewest bytes.\n\n"
       << SeedTable(settings, short_metric) << "\n";
  }
  md << "## All results\n\n" << FullTable(sorted) << "\n";

  md << "## Plots\n\n";
  if (!options.plots) {
    md << "Plots skipped: turned off for this report.\n";
  } else {
    const fs::path plot_dir = fs::absolute(fs::path(out_dir) / "plots").lexically_normal();
    fs::create_directories(plot_dir, ec);
    if (ec) return IoError("cannot create plot directory " + plot_dir.string() + ": " + ec.message());
    const std::optional<std::string> gnuplot = FindOnPath("gnuplot");
    if (!gnuplot) {
      md << "Plots skipped: gnuplot is not on PATH (apt-get install gnuplot-nox); the scripts and data are in "
            "plots/ (run `gnuplot plots/NAME.gp`).\n\n";
    }
    for (const Plot& plot : {AccuracyVsBytes(sorted), AccuracyVsBits(sorted), BytesPerCoder(rows)}) {
      if (!HasPoints(plot)) {
        md << "No " << plot.name << " plot: " << plot.empty_reason << ".\n\n";
        continue;
      }
      SI_ASSIGN_OR_RETURN(const std::string script, WritePlotFiles(plot_dir, plot));
      if (!gnuplot) continue;
      SI_RETURN_IF_ERROR(RunGnuplot(*gnuplot, script, (plot_dir / (plot.name + ".svg")).string()));
      md << "![" << plot.caption << "](plots/" << plot.name << ".svg)\n\n";
    }
  }
  return WriteFile((fs::path(out_dir) / "report.md").string(), md.str());
}

}  // namespace splitinfer::eval
