// A synthetic anime world with a known structure, for tests, demos and model sanity checks:
// latent topics drive both what a synopsis says and who watches and likes an anime, so content
// predicts the audience of anime nobody has rated yet, while popularity is informative too.
// It is deterministic from its seed (Philox) and writes/reads as the mal2023 CSV format.
#pragma once
#include <cstdint>
#include <string>

#include "recsys/dataset.h"

namespace dan::recsys {

struct SyntheticConfig {
  uint64_t seed = 1;
  int topics = 12;   // genres; each has its own vocabulary
  int items = 2000;  // anime
  int users = 3000;
  int words_per_topic = 40;  // made-up words; a quarter of them shared with the next topic
  int synopsis_min_words = 40, synopsis_max_words = 120;
  double general_word_share = 0.4;  // share of synopsis words from the shared vocabulary
  double second_topic_prob = 0.5;   // anime with a second dominant topic
  double median_ratings_per_user = 60;
  double popularity_sigma = 1.0;   // spread of the latent log-popularity
  double popularity_weight = 1.0;  // exponent of popularity in the chance of being rated
  double taste_weight = 1.5;       // exponent of the user-topic affinity in that chance
  double score_noise = 1.0;        // std of the noise on a rating before rounding
  double rec_edge_prob = 0.35;     // anime that get 1-4 recommendation edges
  int reviews = 300, rec_texts = 40;
};

// The world (see recsys/README.md for the generative story):
//  - topic t has words_per_topic made-up words (its last quarter borrowed from topic t+1);
//    a shared general vocabulary of common English words;
//  - each anime: 1-2 dominant topics (mixture weights), a synopsis of synopsis_min..max words
//    (general words with probability general_word_share, else a word of a topic drawn from the
//    mixture, Zipf-like within a vocabulary), a title from its topic words, type, episodes,
//    genres = its topics' names, themes, a studio, a latent log-popularity l ~ N(0, sigma^2)
//    behind members (~exp(l + noise)) and favorites, a latent quality q ~ N(0, 1) behind the
//    MAL score; a few have empty fields (no synopsis, episodes or score);
//  - each user: a taste over topics (1-3 favourites plus a little of everything), an activity
//    level (log-normal number of ratings, median median_ratings_per_user), a score bias;
//  - ratings: a user's anime are drawn one after the other without replacement, each with
//    probability proportional to exp(popularity_weight * l) * affinity^taste_weight among
//    those not yet drawn (affinity = taste . mixture); the score
//    is round(5 + 4 * affinity / max affinity + 0.6 q + bias + noise) clipped to 1..10;
//  - recommendation edges between anime sharing their dominant topic, weights >= 3 growing
//    with both ends' popularity; review texts of sampled ratings; rec texts of sampled edges.
// Users are 1..users (ids), anime ids increase with gaps. The result equals what
// load_dataset returns for the files write_dataset_csv writes (except Dataset::dir).
Dataset make_synthetic(const SyntheticConfig& cfg = {});

// Writes ds as DIR/{anime,ratings,reviews,recommendations,rec_texts}.csv in the mal2023
// format (header row, CRLF line ends, RFC 4180 quoting, lists joined with '|', empty = missing),
// each file atomically; creates DIR if needed. Ratings are written in ds.ratings order, so
// users who have ratings load back with the same indices (users without ratings are not
// written). A list element that is empty or contains '|' cannot be written and is an error.
void write_dataset_csv(const Dataset& ds, const std::string& dir);

}  // namespace dan::recsys
