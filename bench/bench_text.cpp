// Benchmark: the classic text features on the real dataset (mal2023 synopses + reviews):
// corpus tokenization, TF-IDF, randomized SVD to 300 dims and word2vec (dim 100, 5 epochs).
// Peer: with --python PY (a Python with scikit-learn, and gensim for word2vec), the same
// pre-tokenized documents go through scikit-learn's TfidfVectorizer and TruncatedSVD
// (randomized, same oversampling and power iterations) and gensim's Word2Vec (same settings)
// in the same run, and the ratios are printed; each stage is also compared with its time
// budget (TF-IDF 2 s, SVD 10 s, word2vec 60 s on 2 threads).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#include <fmt/core.h>
#pragma GCC diagnostic pop

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "bench/common.h"
#include "core/threads.h"
#include "models/text/corpus.h"
#include "models/text/svd.h"
#include "models/text/tfidf.h"
#include "models/text/word2vec.h"
#include "recsys/dataset.h"

namespace {

using dan::bench::Clock;

// Wall and process-CPU seconds of a stage: on a shared machine the wall time of a stage
// includes waiting for a core, its CPU time does not.
struct Timer {
  Clock::time_point t0 = Clock::now();
  double c0 = dan::bench::process_cpu_s();
  double wall = 0, cpu = 0;
  void stop() {
    wall = dan::bench::seconds_since(t0);
    cpu = dan::bench::process_cpu_s() - c0;
  }
  std::string str() const { return fmt::format("{:8.3f} s wall {:8.3f} s cpu", wall, cpu); }
};

// The scikit-learn side: documents are one per line, tokens separated by spaces.
constexpr const char* kPeer = R"PY(
import sys, time
import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.decomposition import TruncatedSVD
path, dims, iters, over = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
epochs, w2v_threads = int(sys.argv[5]), int(sys.argv[6])
docs = open(path, encoding="utf-8").read().split("\n")[:-1]
t0 = time.perf_counter()
x = TfidfVectorizer(analyzer=str.split, min_df=2, max_df=0.5, sublinear_tf=True,
                    dtype=np.float32).fit_transform(docs)
t1 = time.perf_counter()
svd = TruncatedSVD(dims, algorithm="randomized", n_iter=iters, n_oversamples=over,
                   power_iteration_normalizer="QR", random_state=0)
svd.fit_transform(x)
t2 = time.perf_counter()
w2v = -1.0
if epochs > 0:
    try:
        from gensim.models import Word2Vec
        sents = [d.split() for d in docs]
        t3 = time.perf_counter()
        Word2Vec(sents, vector_size=100, window=5, negative=5, sg=1, min_count=5, sample=1e-3,
                 alpha=0.025, epochs=epochs, workers=w2v_threads, seed=1)
        w2v = time.perf_counter() - t3
    except ImportError:
        pass
print(f"{t1 - t0:.4f} {t2 - t1:.4f} {x.shape[1]} {x.nnz} {svd.singular_values_[0]:.6f} "
      f"{svd.singular_values_[-1]:.6f} {w2v:.4f}")
)PY";

}  // namespace

int main(int argc, char** argv) {
  std::string data = dan::recsys::default_data_dir(), python, dump;
  int threads = 0, w2v_threads = 2, epochs = 5, power = -1;
  int64_t dims = 300;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        fmt::print(stderr, "bench_text: {} needs a value\n", a);
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--data")
      data = next();
    else if (a == "--threads")
      threads = std::stoi(next());
    else if (a == "--w2v-threads")
      w2v_threads = std::stoi(next());
    else if (a == "--epochs")
      epochs = std::stoi(next());
    else if (a == "--dims")
      dims = std::stoll(next());
    else if (a == "--python")
      python = next();
    else if (a == "--dump")
      dump = next();
    else if (a == "--power")
      power = std::stoi(next());
    else {
      fmt::print(stderr,
                 "usage: bench_text [--data DIR] [--threads T] [--w2v-threads T] [--epochs E] "
                 "[--dims D] [--python PY] [--dump DOCS.txt] [--power Q]\n");
      return 2;
    }
  }
  if (data.empty()) {
    fmt::print("bench_text: no dataset (set DEEPANINET_DATA or pass --data); skipped\n");
    return 0;
  }
  if (threads > 0) dan::set_num_threads(threads);
  fmt::print("bench_text: {} cores, load average {:.2f}, {} threads (word2vec: {})\n",
             std::thread::hardware_concurrency(), dan::bench::load_average_1min(),
             dan::num_threads(), w2v_threads);

  Timer t;
  const dan::recsys::Dataset ds = dan::recsys::load_dataset(data);
  t.stop();
  fmt::print("load_dataset          {}   {}\n", t.str(), ds.summary());

  dan::text::TextFields fields;
  fields.synopsis = fields.reviews = true;
  t = Timer();
  const dan::text::Corpus corpus =
      dan::text::build_corpus(ds, fields, dan::text::TokenizerConfig{});
  t.stop();
  fmt::print("tokenize (syn+reviews){}   {} documents, {} tokens, {} distinct\n", t.str(),
             corpus.num_docs(), corpus.num_tokens(), corpus.num_terms());

  if (!dump.empty()) {  // the tokenized documents, one per line, for outside tools
    std::ofstream f(dump, std::ios::binary);
    for (const auto& d : corpus.docs) {
      for (size_t i = 0; i < d.size(); ++i) f << (i ? " " : "") << corpus.terms[d[i]];
      f << '\n';
    }
  }

  dan::text::TfidfConfig tc{
      dan::text::DfLimit::count(2), dan::text::DfLimit::frac(0.5), 0, true, true, true};
  t = Timer();
  const dan::text::Tfidf tf = dan::text::tfidf(corpus, tc);
  t.stop();
  const double t_tfidf = t.wall;
  fmt::print("tfidf                 {}   vocabulary {}, nnz {}\n", t.str(), tf.vocabulary.size(),
             tf.matrix.nnz());

  dan::text::SvdConfig sc;
  if (power >= 0) sc.power_iters = power;
  t = Timer();
  const dan::text::TruncatedSvd svd = dan::text::randomized_svd(tf.matrix, dims, sc);
  const dan::Tensor features = svd.transform();
  t.stop();
  const double t_svd = t.wall;
  fmt::print("randomized_svd {:4}   {}   sigma_1 {:.6f}, sigma_{} {:.6f} (q={}, p={})\n", dims,
             t.str(), svd.singular_values.front(), dims, svd.singular_values.back(), sc.power_iters,
             sc.oversample);
  (void)features;
  {
    std::string line;
    for (int64_t i : {0, 9, 49, 99, 199, 249, 299})
      if (i < dims) line += fmt::format(" s{}={:.5f}", i + 1, svd.singular_values[i]);
    fmt::print("  singular values:{}\n", line);
  }

  dan::text::Word2VecConfig wc;
  wc.epochs = epochs;
  wc.threads = w2v_threads;
  t = Timer();
  const dan::text::Word2Vec w2v = dan::text::train_word2vec(corpus, wc);
  t.stop();
  const double t_w2v = t.wall;
  int64_t kept = 0;
  for (int64_t c : w2v.counts) kept += c;
  fmt::print("word2vec dim {} x{}   {}   vocabulary {}, {:.2f} M words/s (before subsampling)\n",
             wc.dim, epochs, t.str(), w2v.vocab.size(),
             static_cast<double>(kept) * epochs / t_w2v / 1e6);
  for (const char* probe : {"ninja", "mecha", "idol", "detective"}) {
    if (epochs == 0) break;
    if (w2v.id(probe) < 0) continue;
    std::string line;
    for (const auto& [w, s] : w2v.most_similar(probe, 6)) line += fmt::format(" {}({:.2f})", w, s);
    fmt::print("  nearest to {:10}{}\n", probe, line);
  }

  fmt::print(
      "budget ratios (time / budget, < 1 is within): tfidf {:.2f} (2 s), svd {:.2f} "
      "(10 s), word2vec {:.2f} (60 s)\n",
      t_tfidf / 2.0, t_svd / 10.0, t_w2v / 60.0);

  if (!python.empty()) {
    const auto dir = std::filesystem::temp_directory_path();
    const std::string pid = std::to_string(::getpid());
    const std::string docs = (dir / ("bench_text_docs_" + pid + ".txt")).string();
    const std::string script = (dir / ("bench_text_peer_" + pid + ".py")).string();
    const std::string out = (dir / ("bench_text_peer_" + pid + ".out")).string();
    {
      std::ofstream f(docs, std::ios::binary);
      for (const auto& d : corpus.docs) {
        for (size_t i = 0; i < d.size(); ++i) f << (i ? " " : "") << corpus.terms[d[i]];
        f << '\n';
      }
      std::ofstream(script) << kPeer;
    }
    const std::string cmd = fmt::format(
        "OMP_NUM_THREADS={0} OPENBLAS_NUM_THREADS={0} MKL_NUM_THREADS={0} '{1}' '{2}' '{3}' {4} "
        "{5} "
        "{6} {7} {8} > '{9}'",
        dan::num_threads(), python, script, docs, dims, sc.power_iters, sc.oversample, epochs,
        w2v_threads, out);
    const int rc = std::system(cmd.c_str());
    double p_tfidf = 0, p_svd = 0, s1 = 0, sl = 0, p_w2v = -1;
    long long p_vocab = 0, p_nnz = 0;
    std::ifstream in(out);
    if (rc == 0 && (in >> p_tfidf >> p_svd >> p_vocab >> p_nnz >> s1 >> sl >> p_w2v)) {
      fmt::print(
          "scikit-learn peer ({} threads): tfidf {:.3f} s (vocabulary {}, nnz {}), "
          "TruncatedSVD {:.3f} s (sigma_1 {:.6f}, sigma_{} {:.6f})\n",
          dan::num_threads(), p_tfidf, p_vocab, p_nnz, p_svd, s1, dims, sl);
      fmt::print("speed ratio ours/scikit-learn (> 1: we are faster): tfidf {:.2f}x, svd {:.2f}x\n",
                 p_tfidf / t_tfidf, p_svd / t_svd);
      if (p_w2v > 0)
        fmt::print(
            "gensim peer word2vec ({} workers, same settings): {:.3f} s; ratio ours/gensim "
            "{:.2f}x\n",
            w2v_threads, p_w2v, p_w2v / t_w2v);
      else if (epochs > 0)
        fmt::print("gensim not importable: no word2vec peer\n");
    } else {
      fmt::print("scikit-learn peer failed (exit {}): {}\n", rc, cmd);
    }
    std::filesystem::remove(docs);
    std::filesystem::remove(script);
    std::filesystem::remove(out);
  }
  return 0;
}
