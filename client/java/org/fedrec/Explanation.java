package org.fedrec;

/** Why an item got its score (fedrec_explanation): the history items contributing most
 * (score = sum of byContribution + rest) and the history items nearest in content. */
public final class Explanation {
  public final String item;
  public final float score, rest;
  public final int history;
  public final String[] by, similar;
  public final float[] byContribution, similarCosine;

  Explanation(String item, float score, int history, String[] by, float[] byContribution, float rest, String[] similar,
              float[] similarCosine) {
    this.item = item;
    this.score = score;
    this.history = history;
    this.by = by;
    this.byContribution = byContribution;
    this.rest = rest;
    this.similar = similar;
    this.similarCosine = similarCosine;
  }
}
