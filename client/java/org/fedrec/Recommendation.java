package org.fedrec;

/** One recommended item and its score (fedrec_client_recommend). */
public final class Recommendation {
  public final String item;
  public final float score;

  Recommendation(String item, float score) {
    this.item = item;
    this.score = score;
  }
}
