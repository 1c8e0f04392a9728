"""Every experiment `python course.py experiment NAME` runs: its name, title, what to notice and what to expect.

The runs themselves are in catalogue.py; each entry here pairs one with its words, in English and Polish.
"""

from . import catalogue as c
from .catalogue import Experiment

EXPERIMENTS = (
    Experiment(
        "width", ("d_model 8 vs 64: how wide must a token's vector be?",
                  "d_model 8 czy 64: jak szeroki musi być wektor tokenu?"),
        c.width,
        (("The 8-wide model has many times fewer parameters; most of what is left is its embedding table.",
          "Both learn: each loss falls well below ln(vocabulary), the loss of a blind guess.",
          "The narrow one levels off higher: 8 numbers per token cannot hold what the next token depends on."),
         ("Model o szerokości 8 ma wielokrotnie mniej parametrów; większość z nich to tablica osadzeń.",
          "Oba się uczą: każda strata spada wyraźnie poniżej ln(słownika), straty zgadywania na ślepo.",
          "Wąski model zatrzymuje się wyżej: 8 liczb na token nie pomieści tego, od czego zależy następny.")),
        ("d_model 64 ends with a validation loss lower than d_model 8's by more than 0.05",
         "d_model 64 kończy ze stratą walidacyjną niższą niż d_model 8 o ponad 0,05"),
        lambda r: r[1].val_loss < r[0].val_loss - c.CLEAR_MARGIN),
    Experiment(
        "epochs", ("100 epochs on a few pages: does the model overfit?",
                   "100 epok na kilku stronach: czy model się przeucza?"),
        c.epochs,
        (("One run over a slice of the text small enough for 100 epochs; the rows are taken on the way.",
          "The training loss keeps falling: the model learns the few pages it sees by heart.",
          "The validation loss falls, reaches its lowest point, then climbs: memorised text does not carry "
          "over to new text.",
          "The growing gap between the two curves is overfitting; more text, a smaller model or dropout "
          "narrows it."),
         ("Jeden przebieg na wycinku tekstu tak małym, że mieści 100 epok; wiersze zapisano po drodze.",
          "Strata treningowa wciąż spada: model uczy się tych kilku stron na pamięć.",
          "Strata walidacyjna spada, osiąga minimum, po czym rośnie: zapamiętany tekst nie przenosi się na "
          "nowy.",
          "Rosnąca przepaść między krzywymi to przeuczenie; zmniejsza ją więcej tekstu, mniejszy model albo "
          "dropout.")),
        ("the validation loss ends above its lowest point while the training loss keeps falling",
         "strata walidacyjna kończy powyżej swojego minimum, a treningowa wciąż spada"),
        c.overfitted, c.epochs_chart),
    Experiment(
        "heads", ("1, 4 or 8 attention heads at the same width",
                  "1, 4 czy 8 głowic uwagi przy tej samej szerokości"),
        c.heads,
        (("The three models have exactly the same parameters: heads only cut the same q, k and v into slices.",
          "One head mixes the earlier positions one way; several narrower heads can follow several relations "
          "at once.",
          "On a text this small the difference is modest; it grows with longer contexts and more varied text."),
         ("Trzy modele mają dokładnie te same parametry: głowice tylko tną te same q, k i v na kawałki.",
          "Jedna głowica miesza wcześniejsze pozycje w jeden sposób; kilka węższych może śledzić kilka "
          "zależności naraz.",
          "Na tak małym tekście różnica jest niewielka; rośnie z dłuższym kontekstem i bogatszym tekstem.")),
        ("4 or 8 heads end with a validation loss lower than 1 head's by more than 0.05",
         "4 lub 8 głowic kończy ze stratą walidacyjną niższą niż 1 głowica o ponad 0,05"),
        lambda r: min(r[1].val_loss, r[2].val_loss) < r[0].val_loss - c.CLEAR_MARGIN),
    Experiment(
        "data", ("25%, 50% or 100% of the text", "25%, 50% czy 100% tekstu"),
        c.text_size,
        (("Each model trains for the same steps and is scored on the same held-out text.",
          "With less text the same steps read the same sentences more often: a lower training loss, a higher "
          "validation loss.",
          "More text is the surest way to a better model."),
         ("Każdy model uczy się tyle samo kroków i jest oceniany na tym samym odłożonym tekście.",
          "Przy mniejszym tekście te same kroki częściej czytają te same zdania: niższa strata treningowa, "
          "wyższa walidacyjna.",
          "Więcej tekstu to najpewniejsza droga do lepszego modelu.")),
        ("the validation loss falls by more than 0.05 at each step up in text",
         "strata walidacyjna spada o ponad 0,05 z każdym przyrostem tekstu"),
        lambda r: r[0].val_loss > r[1].val_loss + c.CLEAR_MARGIN and r[1].val_loss > r[2].val_loss + c.CLEAR_MARGIN),
    Experiment(
        "positions", ("no positional embeddings: what breaks?", "bez osadzeń pozycji: co się psuje?"),
        c.no_positions,
        (("Without the position table attention weighs earlier tokens by what they are, not where they are; "
          "only the causal mask leaves a trace of order.",
          "With several layers the mask alone lets a model work out roughly where a token stands (an early "
          "position sees fewer tokens), so the gap can be small on a short context and a small text.",
          "The model is smaller by the table: block_size x d_model numbers."),
         ("Bez tablicy pozycji uwaga waży wcześniejsze tokeny według tego, czym są, a nie gdzie stoją; ślad "
          "kolejności zostawia tylko maska przyczynowa.",
          "Przy kilku warstwach sama maska pozwala modelowi z grubsza odgadnąć, gdzie stoi token (wczesna "
          "pozycja widzi mniej tokenów), więc przy krótkim kontekście i małym tekście różnica bywa niewielka.",
          "Model jest mniejszy o tablicę: block_size x d_model liczb.")),
        ("without positions the validation loss is higher by more than 0.05",
         "bez pozycji strata walidacyjna jest wyższa o ponad 0,05"),
        lambda r: r[1].val_loss > r[0].val_loss + c.CLEAR_MARGIN),
    Experiment(
        "sinusoidal", ("sinusoidal vs learned positions", "pozycje sinusoidalne czy wyuczone"),
        c.sinusoidal,
        (("The sinusoidal table is fixed waves of many wavelengths (the original Transformer's): nothing to "
          "learn.",
          "The learned table (GPT-2's) must learn every position from the text, and can fit what the text "
          "needs.",
          "On a short context both work about as well."),
         ("Tablica sinusoidalna to stałe fale o wielu długościach (z pierwszego Transformera): nic do uczenia.",
          "Tablica wyuczona (jak w GPT-2) musi poznać każdą pozycję z tekstu i może dopasować się do niego.",
          "Przy krótkim kontekście obie działają mniej więcej tak samo.")),
        ("the two end within 0.1 of each other in validation loss",
         "obie kończą ze stratami walidacyjnymi różniącymi się o mniej niż 0,1"),
        lambda r: abs(r[0].val_loss - r[1].val_loss) < 0.1),
    Experiment(
        "residual", ("no residual connections: can it still train?",
                     "bez połączeń rezydualnych: czy model nadal się uczy?"),
        c.residual,
        (("Without the residual path the whole signal must pass through every layer, and its gradient back.",
          "The loss falls more slowly and stays higher; the deeper the stack, the worse it gets.",
          "With it, each block only adds a correction to a stream that flows straight through."),
         ("Bez ścieżki rezydualnej cały sygnał musi przejść przez każdą warstwę, a gradient z powrotem.",
          "Strata spada wolniej i zostaje wyższa; im głębszy stos, tym gorzej.",
          "Z nią każdy blok tylko dodaje poprawkę do strumienia, który płynie prosto przez model.")),
        ("without residual connections the validation loss is higher by more than 0.05",
         "bez połączeń rezydualnych strata walidacyjna jest wyższa o ponad 0,05"),
        lambda r: r[1].val_loss > r[0].val_loss + c.CLEAR_MARGIN),
    Experiment(
        "norm", ("post-norm vs pre-norm, with and without a warm-up",
                 "post-norm czy pre-norm, z rozgrzewką i bez"),
        c.norm,
        ((f"{c.DEEP_LAYERS} layers, deep enough for the place of the LayerNorm to matter; the warm-up takes "
          f"{c.LONG_WARMUP:.0%} of the steps.",
          "Post-norm (the original Transformer) normalises after each sum; pre-norm (GPT-2) before each "
          "sublayer, leaving the residual path untouched.",
          "Without a warm-up the first full-size steps hit the untrained post-norm stack hardest; pre-norm "
          "hardly needs one."),
         (f"{c.DEEP_LAYERS} warstw: dość głęboko, by miejsce LayerNorm miało znaczenie; rozgrzewka zajmuje "
          f"{c.LONG_WARMUP:.0%} kroków.".replace("%", " %"),
          "Post-norm (pierwszy Transformer) normalizuje po każdej sumie; pre-norm (GPT-2) przed każdą "
          "podwarstwą i nie dotyka ścieżki rezydualnej.",
          "Bez rozgrzewki pierwsze pełne kroki najmocniej uderzają w niewyuczony stos post-norm; pre-norm "
          "prawie jej nie potrzebuje.")),
        ("post-norm without a warm-up ends worst of the four, by more than 0.05",
         "post-norm bez rozgrzewki kończy najgorzej z czterech, o ponad 0,05"),
        c.post_norm_needs_warmup),
    Experiment(
        "vocab", ("BPE vocabulary of 256, 512, 1024 or 2048 tokens",
                  "słownik BPE: 256, 512, 1024 czy 2048 tokenów"),
        c.vocabulary,
        (("A bigger vocabulary packs more characters into a token: the same text becomes fewer tokens.",
          "Losses per token do not compare across vocabularies; bits per character do: read that column.",
          "On a small text the rare tokens of a big vocabulary are seen too seldom to learn, and the "
          "embedding table grows."),
         ("Większy słownik mieści więcej znaków w tokenie: ten sam tekst to mniej tokenów.",
          "Straty na token nie dają się porównać między słownikami; bity na znak tak: czytaj tę kolumnę.",
          "Na małym tekście rzadkie tokeny dużego słownika pojawiają się zbyt rzadko, by się ich nauczyć, "
          "a tablica osadzeń rośnie.")),
        ("characters per token grow with the vocabulary", "liczba znaków na token rośnie ze słownikiem"),
        c.compresses, c.vocabulary_chart),
    Experiment(
        "scale", ("attention scores divided by sqrt(hs), by hs, or not at all",
                  "wyniki uwagi dzielone przez sqrt(hs), przez hs albo wcale"),
        c.scale,
        (("Dividing by sqrt(hs) keeps the scores near variance 1 however wide a head is.",
          "Not dividing lets the scores grow with hs until the softmax picks one key: its gradient vanishes.",
          "Dividing by hs shrinks them too far: attention stays nearly uniform and learns to focus slowly."),
         ("Dzielenie przez sqrt(hs) trzyma wariancję wyników blisko 1, jakkolwiek szeroka jest głowica.",
          "Bez dzielenia wyniki rosną z hs, aż softmax wybiera jeden klucz: jego gradient zanika.",
          "Dzielenie przez hs zmniejsza je za bardzo: uwaga jest prawie równomierna i wolno uczy się skupiać.")),
        ("/ sqrt(hs) ends within 0.02 of the lowest validation loss",
         "/ sqrt(hs) kończy nie dalej niż 0,02 od najniższej straty walidacyjnej"),
        lambda r: r[0].val_loss <= min(x.val_loss for x in r) + 0.02),
    Experiment(
        "temperature", ("temperature 0.3, 0.8 or 1.5 on the same prompt",
                        "temperatura 0,3, 0,8 czy 1,5 dla tego samego początku"),
        c.temperature,
        (("One trained model, one prompt, one random stream, no top-k: only the temperature differs.",
          "At 0.3 the likeliest tokens win almost every draw: safe, and repetitive.",
          "At 1.5 the distribution flattens: unlikely tokens get drawn and the text drifts into nonsense.",
          "Surprisal is the mean loss of the drawn tokens under the model: how unexpected it finds its own text."),
         ("Jeden wyuczony model, jeden początek, ten sam strumień losowy, bez top-k: różni się tylko "
          "temperatura.",
          "Przy 0,3 najbardziej prawdopodobne tokeny wygrywają prawie każde losowanie: bezpiecznie i "
          "powtarzalnie.",
          "Przy 1,5 rozkład się spłaszcza: losują się mało prawdopodobne tokeny i tekst odpływa w bełkot.",
          "Zaskoczenie to średnia strata wylosowanych tokenów według modelu: jak nieoczekiwany jest dla niego "
          "własny tekst.")),
        ("the surprisal grows with the temperature", "zaskoczenie rośnie z temperaturą"),
        c.surprisal_grows, c.temperature_chart),
    Experiment(
        "baselines", ("a counting bigram model and an LSTM of the GPT's size",
                      "zliczający model bigramowy i LSTM wielkości GPT"),
        c.baselines,
        (("The bigram model only counts which token follows which: one token of context, nothing trained "
          "(its parameters are the counts).",
          "The LSTM has about the GPT's parameters and reads the same context, one token after another.",
          "The GPT reads every earlier position at once through attention; on a text this small an LSTM can "
          "keep up."),
         ("Model bigramowy tylko zlicza, który token następuje po którym: jeden token kontekstu, nic "
          "uczonego (jego parametry to liczniki).",
          "LSTM ma mniej więcej tyle parametrów co GPT i czyta ten sam kontekst, token po tokenie.",
          "GPT czyta wszystkie wcześniejsze pozycje naraz dzięki uwadze; na tak małym tekście LSTM może "
          "dotrzymać mu kroku.")),
        ("the LSTM and the GPT both beat the bigram model", "LSTM i GPT pokonują model bigramowy"),
        c.beat_bigram),
)

BY_NAME = {e.name: e for e in EXPERIMENTS}
