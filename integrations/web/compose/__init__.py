"""The web composer (`/app/posts/new`, and editing a scheduled post): what the page needs beyond
`integrations.bluesky.services`, which accepts, plans and publishes the post.

A draft is one submission of the composer. Its parts use Django's formset naming (`parts-0-text`, `parts-0-image_1`,
`parts-TOTAL_FORMS`), so the page works without JavaScript: "Add part", "Remove part" and "Preview" are submit
buttons that re-render the form. Images uploaded with any submission are stored at once with
`services.store_media` (all of them, or none when one is refused) and carried on as hidden media ids, so nobody
picks a file twice; the preview shows them through the owner-only media view.

A part with a link (and no images) shows the link card it will carry, read by `services.fetch_card` (cached), with
its title and description editable and "Remove card". The choice travels as `parts-N-card` ("auto", "edited" or
"none") with the card's URL, title and description, and becomes the `link_card` of `services.PartRequest`, as the
API's: "auto", `{"url", "title", "description"}` or None. The page's script asks `cards.card_for` for the card while
the user types; without it, the card is shown by Preview (an edit is noticed by comparing with the page's own words).

- `channels`: the channel picker (those that can publish first, a search past twenty) and the one preselected.
- `submit_tokens`: one token per rendered page, so a form sent twice makes one post.
- `forms`: the post's form (channel, reply/quote, languages, time on the user's clock) and each part's form.
- `draft`: one submission with its uploads stored and its buttons applied, its preview; a stored post back into
  the form.
- `cards`: the link card a part will carry, and its signed thumbnail link.
- `preview`: the text as it will be sent, marked up; the counter's words; the whole thread as Bluesky shows it.
- `views`: the composer's pages (write, edit, the channel search).
"""
