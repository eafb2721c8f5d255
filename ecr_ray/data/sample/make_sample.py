#!/usr/bin/env python3
# Copyright the ecr-ray authors. Licensed under the Apache License, Version 2.0.
"""Generate the small, hand-written sample dataset of ecr-ray.

Everything written by this script is original content of the project: the
dialogues, reviews, plots and emotion labels below were written by hand for the
sample. Only public facts (titles, years, cast, crew, genres, IMDb ids, DBpedia
resource names and the DBpedia ontology relation names) describe real films.

The layout and the raw schemas mirror ``../shared/data`` (ReDial raw JSONL,
UniCRS-format DBpedia sub-KG, ECR-style review samples, LLM emotion labels,
INSPIRED in UniCRS format), so that the same loaders read both.

Usage:  python make_sample.py          # (re)write all files next to this script
Stdlib only, deterministic: running it twice gives byte-identical files.
"""

import csv
import io
import json
import os
import re
import sys
from collections import Counter, OrderedDict

HERE = os.path.dirname(os.path.abspath(__file__))

RES = "<http://dbpedia.org/resource/%s>"
ONT = "<http://dbpedia.org/ontology/%s>"

# --------------------------------------------------------------------------
# Relations: identical to the real ReDial KG (24 DBpedia relations + self_loop)
# --------------------------------------------------------------------------
REDIAL_RELATIONS = [
    "subsequentWork", "genre", "company", "composer", "starring", "previousWork",
    "cinematography", "director", "musicComposer", "location", "editing",
    "productionCompany", "format", "language", "editor", "person", "producer",
    "distributor", "country", "network", "executiveProducer", "narrator",
    "author", "writer",
]
# INSPIRED's own KG has a different, smaller relation set (12 + self_loop).
INSPIRED_RELATIONS = [
    "starring", "editing", "cinematography", "productionCompany", "producer",
    "writer", "distributor", "occupation", "genre", "relative", "director",
    "musicComposer",
]

# --------------------------------------------------------------------------
# Movie catalogue.  kg=None: the movie is in the ReDial catalogue but has no
# DBpedia link in the KG (so code must handle "known movie, not KG-linked").
# kg values are DBpedia resource names (without the URI prefix).
# --------------------------------------------------------------------------


def M(key, title, year, genres, plot, imdb, uri=None, kg=None, director=None,
      writer=None, star=None):
    return dict(key=key, title=title, year=year, genres=genres, plot=plot,
                imdb=imdb, uri=uri, kg=kg, director=director, writer=writer,
                star=star)


MOVIES = [
    M("toy_story", "Toy Story", 1995, ["animation", "adventure", "comedy"],
      "A pull-string cowboy doll is jealous of the shiny space ranger who becomes his boy's new favourite toy, until both of them end up lost far from home.",
      "tt0114709", "Toy_Story",
      kg={"starring": ["Tom_Hanks", "Tim_Allen"],
          "director": ["John_Lasseter"],
          "writer": ["Andrew_Stanton"],
          "musicComposer": ["Randy_Newman"],
          "productionCompany": ["Pixar"],
          "distributor": ["Buena_Vista_Pictures"],
          "genre": ["Animation", "Comedy_film"],
          "subsequentWork": ["Toy_Story_2"]},
      writer=["John Lasseter", "Pete Docter", "Andrew Stanton"]),
    M("toy_story2", "Toy Story 2", 1999, ["animation", "adventure", "comedy"],
      "When Woody is stolen by a greedy toy collector, Buzz and the rest of the toys set out across town to bring their friend home.",
      "tt0120363", "Toy_Story_2",
      kg={"starring": ["Tom_Hanks", "Tim_Allen", "Joan_Cusack"],
          "director": ["John_Lasseter", "Lee_Unkrich"],
          "writer": ["Andrew_Stanton"],
          "musicComposer": ["Randy_Newman"],
          "productionCompany": ["Pixar"],
          "distributor": ["Buena_Vista_Pictures"],
          "genre": ["Animation", "Comedy_film"],
          "previousWork": ["Toy_Story"],
          "subsequentWork": ["Toy_Story_3"]}),
    M("toy_story3", "Toy Story 3", 2010, ["animation", "adventure", "comedy"],
      "With Andy leaving for college, his toys are mistakenly donated to a daycare centre that turns out to be ruled by a bitter teddy bear.",
      "tt0435761", "Toy_Story_3",
      kg={"starring": ["Tom_Hanks", "Tim_Allen", "Joan_Cusack"],
          "director": ["Lee_Unkrich"],
          "writer": ["Michael_Arndt"],
          "musicComposer": ["Randy_Newman"],
          "productionCompany": ["Pixar"],
          "distributor": ["Walt_Disney_Studios_Motion_Pictures"],
          "genre": ["Animation", "Comedy_film"],
          "previousWork": ["Toy_Story_2"]}),
    M("finding_nemo", "Finding Nemo", 2003, ["animation", "adventure", "comedy"],
      "An overprotective clownfish crosses the ocean, helped by a forgetful blue tang, to find his son who was taken to a dentist's aquarium.",
      "tt0266543", "Finding_Nemo",
      kg={"starring": ["Albert_Brooks", "Ellen_DeGeneres"],
          "director": ["Andrew_Stanton"],
          "writer": ["Andrew_Stanton", "Bob_Peterson_(filmmaker)"],
          "musicComposer": ["Thomas_Newman"],
          "productionCompany": ["Pixar"],
          "distributor": ["Buena_Vista_Pictures"],
          "genre": ["Animation", "Adventure_film"]}),
    M("up", "Up", 2009, ["animation", "adventure", "comedy"],
      "A grieving old balloon seller ties thousands of balloons to his house to fly to South America, not knowing a young scout is stuck on his porch.",
      "tt1049413", "Up_(2009_film)",
      kg={"starring": ["Ed_Asner", "Christopher_Plummer"],
          "director": ["Pete_Docter"],
          "writer": ["Pete_Docter", "Bob_Peterson_(filmmaker)"],
          "musicComposer": ["Michael_Giacchino"],
          "productionCompany": ["Pixar"],
          "distributor": ["Walt_Disney_Studios_Motion_Pictures"],
          "genre": ["Animation", "Adventure_film"]}),
    M("shrek", "Shrek", 2001, ["animation", "adventure", "comedy"],
      "A grumpy ogre who just wants his swamp back agrees to rescue a princess for a scheming lord, with a talkative donkey at his side.",
      "tt0126029", "Shrek",
      kg={"starring": ["Mike_Myers", "Eddie_Murphy", "Cameron_Diaz"],
          "director": ["Andrew_Adamson", "Vicky_Jenson"],
          "musicComposer": ["Harry_Gregson-Williams"],
          "productionCompany": ["DreamWorks_Animation"],
          "distributor": ["DreamWorks_Pictures"],
          "genre": ["Animation", "Comedy_film"]},
      writer=["William Steig", "Ted Elliott", "Terry Rossio"]),
    M("lion_king", "The Lion King", 1994, ["animation", "adventure", "drama"],
      "A lion cub runs away after his father's death, which his uncle blames on him, and must return years later to claim his place as king.",
      "tt0110357", "The_Lion_King",
      kg={"starring": ["Matthew_Broderick", "Jeremy_Irons", "James_Earl_Jones"],
          "director": ["Roger_Allers", "Rob_Minkoff"],
          "musicComposer": ["Hans_Zimmer"],
          "productionCompany": ["Walt_Disney_Feature_Animation"],
          "distributor": ["Buena_Vista_Pictures"],
          "genre": ["Animation", "Musical_film"]},
      writer=["Irene Mecchi", "Jonathan Roberts", "Linda Woolverton"]),
    M("frozen", "Frozen", 2013, ["animation", "adventure", "comedy"],
      "A fearless princess sets off through the snow with an ice harvester and a talking snowman to find her sister, whose icy powers have trapped their kingdom in winter.",
      "tt2294629", "Frozen_(2013_film)",
      kg={"starring": ["Kristen_Bell", "Idina_Menzel"],
          "director": ["Chris_Buck", "Jennifer_Lee_(filmmaker)"],
          "writer": ["Jennifer_Lee_(filmmaker)"],
          "musicComposer": ["Christophe_Beck"],
          "productionCompany": ["Walt_Disney_Animation_Studios"],
          "distributor": ["Walt_Disney_Studios_Motion_Pictures"],
          "genre": ["Animation", "Musical_film"]}),
    M("conjuring", "The Conjuring", 2013, ["horror", "mystery", "thriller"],
      "Paranormal investigators Ed and Lorraine Warren help a family terrorized by a dark presence in their secluded Rhode Island farmhouse.",
      "tt1457767", "The_Conjuring",
      kg={"starring": ["Vera_Farmiga", "Patrick_Wilson_(American_actor)", "Lili_Taylor"],
          "director": ["James_Wan"],
          "writer": ["Chad_Hayes_(writer)", "Carey_W._Hayes"],
          "producer": ["Peter_Safran"],
          "cinematography": ["John_R._Leonetti"],
          "musicComposer": ["Joseph_Bishara"],
          "productionCompany": ["New_Line_Cinema"],
          "distributor": ["Warner_Bros._Pictures"],
          "genre": ["Horror_film"],
          "subsequentWork": ["The_Conjuring_2"]}),
    M("conjuring2", "The Conjuring 2", 2016, ["horror", "mystery", "thriller"],
      "Ed and Lorraine Warren travel to north London to help a single mother whose daughters are haunted by a malicious spirit.",
      "tt3065204", "The_Conjuring_2",
      kg={"starring": ["Vera_Farmiga", "Patrick_Wilson_(American_actor)"],
          "director": ["James_Wan"],
          "writer": ["James_Wan", "Chad_Hayes_(writer)", "Carey_W._Hayes"],
          "producer": ["Peter_Safran"],
          "musicComposer": ["Joseph_Bishara"],
          "productionCompany": ["New_Line_Cinema"],
          "distributor": ["Warner_Bros._Pictures"],
          "genre": ["Horror_film"],
          "previousWork": ["The_Conjuring"]}),
    M("insidious", "Insidious", 2010, ["horror", "mystery", "thriller"],
      "Soon after a family moves house, their young son falls into an unexplained coma and something starts to follow them from room to room.",
      "tt1591095", "Insidious_(film)",
      kg={"starring": ["Patrick_Wilson_(American_actor)", "Rose_Byrne", "Lin_Shaye"],
          "director": ["James_Wan"],
          "writer": ["Leigh_Whannell"],
          "producer": ["Jason_Blum"],
          "musicComposer": ["Joseph_Bishara"],
          "productionCompany": ["Blumhouse_Productions"],
          "genre": ["Horror_film"]}),
    M("annabelle", "Annabelle", 2014, ["horror", "mystery", "thriller"],
      "An expectant couple is targeted by a satanic cult, and the vintage doll they kept in the nursery becomes the vessel of something evil.",
      "tt3322940", "Annabelle_(film)",
      kg={"starring": ["Annabelle_Wallis", "Ward_Horton"],
          "director": ["John_R._Leonetti"],
          "writer": ["Gary_Dauberman"],
          "producer": ["James_Wan", "Peter_Safran"],
          "musicComposer": ["Joseph_Bishara"],
          "productionCompany": ["New_Line_Cinema"],
          "distributor": ["Warner_Bros._Pictures"],
          "genre": ["Horror_film"]}),
    M("it", "It", 2017, ["horror"],
      "In a small Maine town, a group of bullied kids band together to face a shape-shifting clown that feeds on children every 27 years.",
      "tt1396484", "It_(2017_film)",
      kg={"starring": ["Bill_Skarsg\u00e5rd", "Jaeden_Martell", "Finn_Wolfhard"],
          "director": ["Andy_Muschietti"],
          "writer": ["Gary_Dauberman"],
          "musicComposer": ["Benjamin_Wallfisch"],
          "productionCompany": ["New_Line_Cinema"],
          "distributor": ["Warner_Bros._Pictures"],
          "genre": ["Horror_film"]},
      writer=["Chase Palmer", "Cary Joji Fukunaga", "Gary Dauberman"]),
    M("shining", "The Shining", 1980, ["drama", "horror"],
      "A struggling writer takes a winter caretaker job at an isolated mountain hotel with his wife and son, and the hotel slowly drives him to violence.",
      "tt0081505", "The_Shining_(film)",
      kg={"starring": ["Jack_Nicholson", "Shelley_Duvall"],
          "director": ["Stanley_Kubrick"],
          "writer": ["Stanley_Kubrick", "Diane_Johnson"],
          "musicComposer": ["Wendy_Carlos"],
          "distributor": ["Warner_Bros."],
          "genre": ["Horror_film"]},
      writer=["Stephen King", "Stanley Kubrick", "Diane Johnson"]),
    M("get_out", "Get Out", 2017, ["horror", "mystery", "thriller"],
      "A young Black photographer visits his white girlfriend's parents for a weekend, and their polite hospitality hides something sinister.",
      "tt5052448", "Get_Out",
      kg={"starring": ["Daniel_Kaluuya", "Allison_Williams_(actress)"],
          "director": ["Jordan_Peele"],
          "writer": ["Jordan_Peele"],
          "producer": ["Jason_Blum", "Jordan_Peele"],
          "musicComposer": ["Michael_Abels"],
          "productionCompany": ["Blumhouse_Productions"],
          "distributor": ["Universal_Pictures"],
          "genre": ["Horror_film"]}),
    M("quiet_place", "A Quiet Place", 2018, ["drama", "horror", "sci-fi"],
      "A family lives in total silence on a remote farm, because the blind creatures that overran the world hunt anything that makes a sound.",
      "tt6644200", "A_Quiet_Place",
      kg={"starring": ["Emily_Blunt", "John_Krasinski", "Millicent_Simmonds"],
          "director": ["John_Krasinski"],
          "writer": ["John_Krasinski"],
          "musicComposer": ["Marco_Beltrami"],
          "distributor": ["Paramount_Pictures"],
          "genre": ["Horror_film", "Science_fiction_film"]}),
    M("halloween", "Halloween", 1978, ["horror", "thriller"],
      "Fifteen years after killing his sister, Michael Myers escapes from a sanitarium and stalks a babysitter in his quiet hometown on Halloween night.",
      "tt0077651", "Halloween_(1978_film)",
      kg={"starring": ["Jamie_Lee_Curtis", "Donald_Pleasence"],
          "director": ["John_Carpenter"],
          "writer": ["John_Carpenter"],
          "musicComposer": ["John_Carpenter"],
          "genre": ["Horror_film"]}),
    M("bttf", "Back to the Future", 1985, ["adventure", "comedy", "sci-fi"],
      "A teenager is sent back to 1955 in a time machine built from a DeLorean and must make sure his parents fall in love so that he still exists.",
      "tt0088763", "Back_to_the_Future",
      kg={"starring": ["Michael_J._Fox", "Christopher_Lloyd"],
          "director": ["Robert_Zemeckis"],
          "writer": ["Robert_Zemeckis", "Bob_Gale"],
          "executiveProducer": ["Steven_Spielberg"],
          "musicComposer": ["Alan_Silvestri"],
          "productionCompany": ["Amblin_Entertainment"],
          "distributor": ["Universal_Pictures"],
          "genre": ["Science_fiction_film", "Comedy_film"]}),
    M("forrest_gump", "Forrest Gump", 1994, ["drama", "romance"],
      "A kind man from Alabama drifts through three decades of American history while never giving up on the girl he has loved since childhood.",
      "tt0109830", "Forrest_Gump",
      kg={"starring": ["Tom_Hanks", "Robin_Wright", "Gary_Sinise"],
          "director": ["Robert_Zemeckis"],
          "writer": ["Eric_Roth"],
          "musicComposer": ["Alan_Silvestri"],
          "distributor": ["Paramount_Pictures"],
          "genre": ["Drama_(film_and_television)", "Romance_film"]},
      writer=["Winston Groom", "Eric Roth"]),
    M("cast_away", "Cast Away", 2000, ["adventure", "drama", "romance"],
      "A time-obsessed courier executive survives a plane crash and spends years alone on a deserted island with only a volleyball for company.",
      "tt0162222", "Cast_Away",
      kg={"starring": ["Tom_Hanks", "Helen_Hunt"],
          "director": ["Robert_Zemeckis"],
          "writer": ["William_Broyles_Jr."],
          "musicComposer": ["Alan_Silvestri"],
          "distributor": ["20th_Century_Fox"],
          "genre": ["Drama_(film_and_television)", "Adventure_film"]}),
    M("spr", "Saving Private Ryan", 1998, ["drama", "war"],
      "After the D-Day landings, a captain leads a small squad deep into occupied France to bring home a paratrooper whose three brothers have been killed.",
      "tt0120815", "Saving_Private_Ryan",
      kg={"starring": ["Tom_Hanks", "Matt_Damon"],
          "director": ["Steven_Spielberg"],
          "writer": ["Robert_Rodat"],
          "musicComposer": ["John_Williams"],
          "productionCompany": ["Amblin_Entertainment"],
          "distributor": ["DreamWorks_Pictures", "Paramount_Pictures"],
          "genre": ["War_film", "Drama_(film_and_television)"]}),
    M("jurassic_park", "Jurassic Park", 1993, ["action", "adventure", "sci-fi"],
      "A group of scientists is invited to preview an island theme park of cloned dinosaurs just before the power fails and the animals break loose.",
      "tt0107290", "Jurassic_Park_(film)",
      kg={"starring": ["Sam_Neill", "Laura_Dern", "Jeff_Goldblum"],
          "director": ["Steven_Spielberg"],
          "writer": ["Michael_Crichton"],
          "musicComposer": ["John_Williams"],
          "productionCompany": ["Amblin_Entertainment"],
          "distributor": ["Universal_Pictures"],
          "genre": ["Science_fiction_film", "Adventure_film"]}),
    M("star_wars", "Star Wars", 1977, ["action", "adventure", "fantasy"],
      "A farm boy joins an old Jedi knight, a smuggler and a rebel princess to rescue the galaxy from the Empire and its planet-destroying battle station.",
      "tt0076759", "Star_Wars_(film)",
      kg={"starring": ["Mark_Hamill", "Harrison_Ford", "Carrie_Fisher"],
          "director": ["George_Lucas"],
          "writer": ["George_Lucas"],
          "musicComposer": ["John_Williams"],
          "productionCompany": ["Lucasfilm"],
          "distributor": ["20th_Century_Fox"],
          "genre": ["Science_fiction_film"]}),
    M("matrix", "The Matrix", 1999, ["action", "sci-fi"],
      "A hacker discovers that the world he lives in is a simulation run by machines and joins a band of rebels fighting to free humanity.",
      "tt0133093", "The_Matrix",
      kg={"starring": ["Keanu_Reeves", "Laurence_Fishburne", "Carrie-Anne_Moss"],
          "director": ["The_Wachowskis"],
          "writer": ["The_Wachowskis"],
          "musicComposer": ["Don_Davis_(composer)"],
          "productionCompany": ["Village_Roadshow_Pictures"],
          "distributor": ["Warner_Bros."],
          "genre": ["Science_fiction_film", "Action_film"]},
      director=["Lana Wachowski", "Lilly Wachowski"],
      writer=["Lilly Wachowski", "Lana Wachowski"]),
    M("inception", "Inception", 2010, ["action", "adventure", "sci-fi"],
      "A thief who steals secrets from people's dreams is offered one last job: planting an idea deep in the mind of a powerful heir.",
      "tt1375666", "Inception",
      kg={"starring": ["Leonardo_DiCaprio", "Joseph_Gordon-Levitt", "Elliot_Page", "Tom_Hardy"],
          "director": ["Christopher_Nolan"],
          "writer": ["Christopher_Nolan"],
          "producer": ["Emma_Thomas", "Christopher_Nolan"],
          "editing": ["Lee_Smith_(film_editor)"],
          "musicComposer": ["Hans_Zimmer"],
          "productionCompany": ["Legendary_Pictures", "Syncopy_Inc."],
          "distributor": ["Warner_Bros._Pictures"],
          "genre": ["Science_fiction_film", "Action_film"]}),
    M("interstellar", "Interstellar", 2014, ["adventure", "drama", "sci-fi"],
      "With crops failing on Earth, a former pilot leaves his children behind to lead a mission through a wormhole in search of a new home for humanity.",
      "tt0816692", "Interstellar_(film)",
      kg={"starring": ["Matthew_McConaughey", "Anne_Hathaway", "Jessica_Chastain", "Michael_Caine"],
          "director": ["Christopher_Nolan"],
          "writer": ["Jonathan_Nolan", "Christopher_Nolan"],
          "producer": ["Emma_Thomas", "Christopher_Nolan"],
          "editing": ["Lee_Smith_(film_editor)"],
          "musicComposer": ["Hans_Zimmer"],
          "productionCompany": ["Legendary_Pictures", "Syncopy_Inc."],
          "distributor": ["Paramount_Pictures"],
          "genre": ["Science_fiction_film", "Drama_(film_and_television)"]}),
    M("dark_knight", "The Dark Knight", 2008, ["action", "crime", "drama"],
      "Batman, Lieutenant Gordon and district attorney Harvey Dent try to clean up Gotham while the Joker pushes the city into chaos.",
      "tt0468569", "The_Dark_Knight_(film)",
      kg={"starring": ["Christian_Bale", "Heath_Ledger", "Aaron_Eckhart", "Michael_Caine"],
          "director": ["Christopher_Nolan"],
          "writer": ["Jonathan_Nolan", "Christopher_Nolan"],
          "producer": ["Emma_Thomas", "Christopher_Nolan"],
          "editing": ["Lee_Smith_(film_editor)"],
          "musicComposer": ["Hans_Zimmer", "James_Newton_Howard"],
          "productionCompany": ["Legendary_Pictures", "Syncopy_Inc."],
          "distributor": ["Warner_Bros._Pictures"],
          "genre": ["Superhero_film", "Action_film"]}),
    M("titanic", "Titanic", 1997, ["drama", "romance"],
      "A penniless artist and an unhappy upper-class young woman fall in love aboard the Titanic during its doomed maiden voyage.",
      "tt0120338", "Titanic_(1997_film)",
      kg={"starring": ["Leonardo_DiCaprio", "Kate_Winslet", "Kathy_Bates"],
          "director": ["James_Cameron"],
          "writer": ["James_Cameron"],
          "musicComposer": ["James_Horner"],
          "productionCompany": ["Lightstorm_Entertainment"],
          "distributor": ["Paramount_Pictures", "20th_Century_Fox"],
          "genre": ["Romance_film", "Drama_(film_and_television)"]}),
    M("terminator", "The Terminator", 1984, ["action", "sci-fi"],
      "A cyborg assassin is sent back from the future to kill a waitress whose unborn son will lead the human resistance against the machines.",
      "tt0088247", "The_Terminator",
      kg={"starring": ["Arnold_Schwarzenegger", "Linda_Hamilton"],
          "director": ["James_Cameron"],
          "writer": ["James_Cameron"],
          "musicComposer": ["Brad_Fiedel"],
          "genre": ["Science_fiction_film", "Action_film"],
          "subsequentWork": ["Terminator_2:_Judgment_Day"]}),
    M("t2", "Terminator 2: Judgment Day", 1991, ["action", "sci-fi"],
      "A reprogrammed Terminator protects the teenage John Connor and his mother from a far more advanced liquid-metal killer sent to erase him.",
      "tt0103064", "Terminator_2:_Judgment_Day",
      kg={"starring": ["Arnold_Schwarzenegger", "Linda_Hamilton", "Edward_Furlong"],
          "director": ["James_Cameron"],
          "writer": ["James_Cameron"],
          "musicComposer": ["Brad_Fiedel"],
          "genre": ["Science_fiction_film", "Action_film"],
          "previousWork": ["The_Terminator"]}),
    M("alien", "Alien", 1979, ["horror", "sci-fi"],
      "The crew of a commercial space tug answers a distress signal on a distant moon and brings back an aggressive, fast-growing creature.",
      "tt0078748", "Alien_(film)",
      kg={"starring": ["Sigourney_Weaver", "John_Hurt"],
          "director": ["Ridley_Scott"],
          "writer": ["Dan_O'Bannon"],
          "musicComposer": ["Jerry_Goldsmith"],
          "distributor": ["20th_Century_Fox"],
          "genre": ["Science_fiction_film", "Horror_film"]}),
    M("gladiator", "Gladiator", 2000, ["action", "adventure", "drama"],
      "A Roman general betrayed by the emperor's jealous son is sold into slavery and fights his way through the arena towards revenge.",
      "tt0172495", "Gladiator_(2000_film)",
      kg={"starring": ["Russell_Crowe", "Joaquin_Phoenix"],
          "director": ["Ridley_Scott"],
          "writer": ["David_Franzoni"],
          "musicComposer": ["Hans_Zimmer"],
          "productionCompany": ["Scott_Free_Productions"],
          "distributor": ["DreamWorks_Pictures", "Universal_Pictures"],
          "genre": ["Action_film", "Drama_(film_and_television)"]}),
    M("die_hard", "Die Hard", 1988, ["action", "thriller"],
      "A New York cop visiting his estranged wife's Christmas party is the only one who can stop a gang of thieves that has taken over a Los Angeles skyscraper.",
      "tt0095016", "Die_Hard",
      kg={"starring": ["Bruce_Willis", "Alan_Rickman"],
          "director": ["John_McTiernan"],
          "writer": ["Jeb_Stuart_(writer)"],
          "musicComposer": ["Michael_Kamen"],
          "distributor": ["20th_Century_Fox"],
          "genre": ["Action_film"]}),
    M("sixth_sense", "The Sixth Sense", 1999, ["drama", "mystery", "thriller"],
      "A child psychologist tries to help a frightened boy who says he sees dead people, and the case forces him to face his own past.",
      "tt0167404", "The_Sixth_Sense",
      kg={"starring": ["Bruce_Willis", "Haley_Joel_Osment", "Toni_Collette"],
          "director": ["M._Night_Shyamalan"],
          "writer": ["M._Night_Shyamalan"],
          "musicComposer": ["James_Newton_Howard"],
          "distributor": ["Buena_Vista_Pictures"],
          "genre": ["Thriller_film", "Horror_film"]}),
    M("hangover", "The Hangover", 2009, ["comedy"],
      "Three friends wake up in a trashed Las Vegas hotel suite with no memory of the bachelor party and no idea where the groom is.",
      "tt1119646", "The_Hangover",
      kg={"starring": ["Bradley_Cooper", "Ed_Helms", "Zach_Galifianakis"],
          "director": ["Todd_Phillips"],
          "writer": ["Jon_Lucas"],
          "musicComposer": ["Christophe_Beck"],
          "productionCompany": ["Legendary_Pictures"],
          "distributor": ["Warner_Bros._Pictures"],
          "genre": ["Comedy_film"]}),
    M("superbad", "Superbad", 2007, ["comedy"],
      "Two inseparable, awkward high school seniors spend one chaotic night trying to bring alcohol to a party before they go to different colleges.",
      "tt0829482", "Superbad",
      kg={"starring": ["Jonah_Hill", "Michael_Cera", "Seth_Rogen"],
          "director": ["Greg_Mottola"],
          "writer": ["Seth_Rogen", "Evan_Goldberg"],
          "producer": ["Judd_Apatow"],
          "musicComposer": ["Lyle_Workman"],
          "productionCompany": ["Apatow_Productions"],
          "distributor": ["Columbia_Pictures"],
          "genre": ["Comedy_film"]}),
    M("step_brothers", "Step Brothers", 2008, ["comedy"],
      "Two spoiled, unemployed forty-year-old men become stepbrothers when their single parents marry, and their rivalry wrecks the household.",
      "tt0838283", "Step_Brothers_(film)",
      kg={"starring": ["Will_Ferrell", "John_C._Reilly"],
          "director": ["Adam_McKay"],
          "writer": ["Will_Ferrell", "Adam_McKay"],
          "producer": ["Judd_Apatow"],
          "musicComposer": ["Jon_Brion"],
          "distributor": ["Columbia_Pictures"],
          "genre": ["Comedy_film"]}),
    M("anchorman", "Anchorman: The Legend of Ron Burgundy", 2004, ["comedy"],
      "San Diego's vain star news anchor sees his all-male newsroom turned upside down when an ambitious female reporter joins the team in the 1970s.",
      "tt0357413", "Anchorman:_The_Legend_of_Ron_Burgundy",
      kg={"starring": ["Will_Ferrell", "Christina_Applegate", "Steve_Carell"],
          "director": ["Adam_McKay"],
          "writer": ["Will_Ferrell", "Adam_McKay"],
          "producer": ["Judd_Apatow"],
          "musicComposer": ["Alex_Wurman"],
          "productionCompany": ["Apatow_Productions"],
          "distributor": ["DreamWorks_Pictures"],
          "genre": ["Comedy_film"]}),
    M("bridesmaids", "Bridesmaids", 2011, ["comedy", "romance"],
      "A broke, heartbroken baker is chosen as maid of honour for her best friend's wedding and competes with a perfect new friend for the role.",
      "tt1478338", "Bridesmaids_(2011_film)",
      kg={"starring": ["Kristen_Wiig", "Maya_Rudolph", "Rose_Byrne", "Melissa_McCarthy"],
          "director": ["Paul_Feig"],
          "writer": ["Kristen_Wiig", "Annie_Mumolo"],
          "producer": ["Judd_Apatow"],
          "musicComposer": ["Michael_Andrews_(musician)"],
          "productionCompany": ["Apatow_Productions"],
          "distributor": ["Universal_Pictures"],
          "genre": ["Comedy_film"]}),
    M("notebook", "The Notebook", 2004, ["drama", "romance"],
      "In a nursing home, an old man reads a woman the story of a summer romance in 1940s South Carolina that was torn apart by her family and by war.",
      "tt0332280", "The_Notebook",
      kg={"starring": ["Ryan_Gosling", "Rachel_McAdams", "James_Garner"],
          "director": ["Nick_Cassavetes"],
          "writer": ["Jeremy_Leven"],
          "musicComposer": ["Aaron_Zigman"],
          "distributor": ["New_Line_Cinema"],
          "genre": ["Romance_film", "Drama_(film_and_television)"]},
      writer=["Jeremy Leven", "Jan Sardi", "Nicholas Sparks"]),
    M("la_la_land", "La La Land", 2016, ["comedy", "drama", "music"],
      "A jazz pianist and an aspiring actress fall in love in Los Angeles while each chases a dream that may pull them apart.",
      "tt3783718", "La_La_Land",
      kg={"starring": ["Ryan_Gosling", "Emma_Stone"],
          "director": ["Damien_Chazelle"],
          "writer": ["Damien_Chazelle"],
          "musicComposer": ["Justin_Hurwitz"],
          "productionCompany": ["Summit_Entertainment"],
          "genre": ["Musical_film", "Romance_film"]}),
    M("home_alone", "Home Alone", 1990, ["comedy", "family"],
      "An eight-year-old accidentally left behind when his family flies to Paris for Christmas defends the house against two bumbling burglars.",
      "tt0099785", "Home_Alone",
      kg={"starring": ["Macaulay_Culkin", "Joe_Pesci", "Catherine_O'Hara"],
          "director": ["Chris_Columbus_(filmmaker)"],
          "writer": ["John_Hughes_(filmmaker)"],
          "musicComposer": ["John_Williams"],
          "distributor": ["20th_Century_Fox"],
          "genre": ["Comedy_film"]}),
    # --- in the catalogue (csv, id2info) but NOT linked to the KG ---------
    M("hereditary", "Hereditary", 2018, ["drama", "horror", "mystery"],
      "After the death of her secretive mother, a miniature artist and her family start to uncover a terrifying inheritance.",
      "tt7784604", director=["Ari Aster"], writer=["Ari Aster"],
      star=["Toni Collette", "Milly Shapiro", "Gabriel Byrne"]),
    M("paddington2", "Paddington 2", 2017, ["adventure", "comedy", "family"],
      "A polite bear from Peru is wrongly jailed for stealing a rare pop-up book, and his friends must unmask the vain actor who really took it.",
      "tt4468740", director=["Paul King"], writer=["Paul King", "Simon Farnaby"],
      star=["Ben Whishaw", "Hugh Grant", "Hugh Bonneville"]),
    M("knives_out", "Knives Out", 2019, ["comedy", "crime", "drama"],
      "A famous detective investigates the death of a wealthy crime novelist on the night of his 85th birthday, and everyone in the family is a suspect.",
      "tt8946378", director=["Rian Johnson"], writer=["Rian Johnson"],
      star=["Daniel Craig", "Chris Evans", "Ana de Armas"]),
]
MOVIE = {m["key"]: m for m in MOVIES}

# id2info (IMDb-style metadata) lists three stars and the full writing credits,
# where the mini KG keeps only the cast/crew that the sample needs.
ID2INFO_EXTRA = {
    "toy_story": dict(star=["Don Rickles"]),
    "finding_nemo": dict(star=["Alexander Gould"], writer=["David Reynolds"]),
    "up": dict(star=["Jordan Nagai"]),
    "frozen": dict(star=["Jonathan Groff"], writer=["Chris Buck", "Shane Morris"]),
    "conjuring2": dict(star=["Madison Wolfe"], writer=["David Leslie Johnson"]),
    "annabelle": dict(star=["Alfre Woodard"]),
    "shining": dict(star=["Danny Lloyd"]),
    "get_out": dict(star=["Bradley Whitford"]),
    "halloween": dict(star=["Tony Moran"], writer=["Debra Hill"]),
    "bttf": dict(star=["Lea Thompson"]),
    "cast_away": dict(star=["Paul Sanchez"]),
    "spr": dict(star=["Tom Sizemore"]),
    "terminator": dict(star=["Michael Biehn"], writer=["Gale Anne Hurd", "William Wisher"]),
    "alien": dict(star=["Tom Skerritt"], writer=["Ronald Shusett"]),
    "gladiator": dict(star=["Connie Nielsen"], writer=["John Logan", "William Nicholson"]),
    "die_hard": dict(star=["Bonnie Bedelia"], writer=["Steven E. de Souza"]),
    "step_brothers": dict(star=["Mary Steenburgen"]),
    "la_la_land": dict(star=["Rosemarie DeWitt"]),
}

# Invented ReDial-style movie ids (the real ones are 5-6 digit numbers; these
# are kept in a 9xxxxx range so they never collide with the real catalogue).
for _i, _m in enumerate(MOVIES):
    _m["rid"] = str(900000 + 13 * (_i + 1))
    _m["name"] = "%s (%d)" % (_m["title"], _m["year"])
    # The real movies_with_mentions.csv writes about half of the names with a
    # double space before the year ("Police Academy  (1984)"); mention names in
    # the conversations use the csv spelling.
    _m["csv_name"] = ("%s  (%d)" if _i % 2 == 1 else "%s (%d)") % (_m["title"], _m["year"])


def label(uri_or_name):
    """Human-readable label of a DBpedia resource: no prefix, no '(disambiguation)'."""
    name = uri_or_name
    if name.startswith("<"):
        name = name.rsplit("/", 1)[1][:-1]
    name = re.sub(r"_\([^)]*\)$", "", name)
    return name.replace("_", " ")


# --------------------------------------------------------------------------
# Build the mini KG (UniCRS format)
# --------------------------------------------------------------------------

def build_kg():
    entity2id = OrderedDict()

    def eid(name):
        uri = RES % name
        if uri not in entity2id:
            entity2id[uri] = len(entity2id)
        return entity2id[uri]

    rel2id = {ONT % r: i for i, r in enumerate(REDIAL_RELATIONS)}
    rel2id["self_loop"] = len(REDIAL_RELATIONS)
    edges = OrderedDict()
    items = []
    for m in MOVIES:
        if m["kg"] is None:
            continue
        h = eid(m["uri"])
        items.append(h)
        m["entity_id"] = h
        edges.setdefault(h, [])
        for rel, tails in m["kg"].items():
            for t in tails:
                edges[h].append([rel2id[ONT % rel], eid(t)])
    # every entity gets a self loop first, as in the real dbpedia_subkg.json
    subkg = OrderedDict()
    for uri, i in entity2id.items():
        subkg[str(i)] = [[rel2id["self_loop"], i]] + edges.get(i, [])
    return entity2id, rel2id, subkg, items


# --------------------------------------------------------------------------
# Conversations (raw ReDial schema).  Turns:
#   R(text, ...)                      recommender message(s)
#   S(text, ..., labels, raw, why)    seeker message(s); several texts = several
#                                     consecutive messages that form one turn
# "@key" is replaced by "@<ReDial movie id>"; a purely numeric "@123" is kept.
# fb: key -> (suggested, seen, liked): liked 0 dislike, 1 like, 2 did not say;
# seen 0 no, 1 yes, 2 did not say.
# --------------------------------------------------------------------------

def R(*texts):
    return ("R", list(texts), None)


def S(*texts, labels=None, raw=None, why=None):
    lab = None if labels is None else dict(labels=list(labels), raw=list(raw), reason=why)
    return ("S", list(texts), lab)


def C(turns, fb, initiator_empty=False, respondent_empty=False, respondent_fb=None):
    return dict(turns=turns, fb=fb, initiator_empty=initiator_empty,
                respondent_empty=respondent_empty, respondent_fb=respondent_fb or {})


TRAIN = [
    # 1 horror, James Wan
    C([
        S("Hi there! I'm looking for a good horror movie for tonight.",
          labels=["curious"], raw=["eager"], why="User opens by asking for a horror recommendation."),
        R("Hello! Sure, what scary movies have you enjoyed before?"),
        S("I loved @conjuring, it scared me half to death!", "Vera Farmiga was amazing in it.",
          labels=["like"], raw=["love", "thrill"], why="User says they loved The Conjuring and praises Vera Farmiga."),
        R("Then you'd probably like @insidious, it's also directed by James Wan.", "It has Patrick Wilson too."),
        S("Oh I haven't seen that one yet. Is it as creepy as The Conjuring?",
          labels=["curious"], raw=["interest"], why="User has not seen Insidious and asks how creepy it is."),
        R("Honestly I think it's even creepier in some parts. The red-faced demon still haunts me."),
        S("Haha okay, you've convinced me! I'll add it to my list.",
          labels=["agreement", "happy"], raw=["amused", "convinced"], why="User happily accepts the suggestion."),
        R("Another option is @it, the clown one. Bill Skarsgard is terrifying as Pennywise."),
        S("Ugh, I can't stand clowns. I tried watching @it and had to turn it off.",
          labels=["negative"], raw=["disgust"], why="User dislikes clowns and gave up on It."),
        R("Fair enough! Then stick with @insidious, or maybe @conjuring2 since you liked the first."),
        S("Oh I didn't know there was a sequel! That's great news.", "Thanks so much for the help!",
          labels=["surprise", "grateful"], raw=["surprised", "thankful"], why="User is surprised a sequel exists and thanks the recommender."),
        R("You're welcome, enjoy the scares!"),
        S("Bye!", labels=["neutral"], raw=["farewell"], why="User simply says goodbye."),
    ], {"conjuring": (0, 1, 1), "insidious": (1, 0, 1), "it": (1, 1, 0), "conjuring2": (1, 0, 2)}),

    # 2 family animation
    C([
        R("Hi! What are you looking for today?"),
        S("Hello! I need something to watch with my kids this weekend. They're 6 and 9.",
          labels=["curious"], raw=["hopeful"], why="User asks for a family movie for young kids."),
        R("Fun! Have they seen @toy_story?"),
        S("Oh yes, we've watched it a hundred times lol", "My son knows every line Tom Hanks says as Woody.",
          labels=["happy", "like"], raw=["amused", "fond"], why="User fondly describes how much the family loves Toy Story."),
        R("Haha that's awesome. How about @finding_nemo? Ellen DeGeneres as Dory is hilarious."),
        S("We saw that one last month and they loved it.",
          labels=["like"], raw=["pleased"], why="User's kids loved Finding Nemo."),
        R("Okay, then I'd go with @up. The opening is a bit sad but it's a beautiful adventure."),
        S("I've never seen Up! What is it about?",
          labels=["curious"], raw=["curious"], why="User has not seen Up and asks about the plot."),
        R("An old man ties thousands of balloons to his house and flies away to South America, with a boy scout stuck on his porch."),
        S("That sounds adorable, I think they'd love it.",
          labels=["happy", "like"], raw=["delighted"], why="User is delighted by the description of Up."),
        R("You could also try @paddington2 if you want something British and sweet."),
        S("Hmm, I'm not sure my kids would sit through that one.", "But @up sounds perfect, thank you!",
          labels=["grateful", "neutral"], raw=["hesitant", "thankful"], why="User is unsure about Paddington 2 but thanks the recommender for Up."),
        R("You're welcome, have a great weekend!"),
    ], {"toy_story": (1, 1, 1), "finding_nemo": (1, 1, 1), "up": (1, 0, 1), "paddington2": (1, 0, 2)}),

    # 3 comedy, Will Ferrell
    C([
        S("hey there", labels=["neutral"], raw=["casual"], why="User greets casually."),
        R("Hi! What kind of movie are you looking for?"),
        S("I want a dumb comedy that'll make me laugh until I cry", "something like @step_brothers",
          labels=["curious", "like"], raw=["playful", "interest"], why="User wants a silly comedy and cites Step Brothers as a favourite."),
        R("Ha! Will Ferrell is the king of that. Have you seen @anchorman?"),
        S("Yes!! Stay classy San Diego lol. One of my all time favorites.",
          labels=["like", "happy"], raw=["love", "joy"], why="User enthusiastically loves Anchorman."),
        R("Then maybe @superbad? Jonah Hill and Michael Cera are great together."),
        S("I've seen it, it was okay. Kind of overrated to me.",
          labels=["negative"], raw=["unimpressed"], why="User found Superbad overrated."),
        R("Fair. What about @hangover? Zach Galifianakis steals every scene."),
        S("Oh I haven't seen that one yet, is it really that funny?",
          labels=["curious"], raw=["interest"], why="User has not seen The Hangover and asks if it is funny."),
        R("Definitely, the whole wolf pack thing is hilarious. Bradley Cooper is great too."),
        S("Okay I'm sold, I'll watch it tonight!",
          labels=["agreement", "happy"], raw=["convinced", "excited"], why="User agrees to watch The Hangover."),
        R("Awesome, enjoy!"),
        S("thanks, bye", labels=["grateful"], raw=["thankful"], why="User thanks and says goodbye."),
    ], {"step_brothers": (0, 1, 1), "anchorman": (1, 1, 1), "superbad": (1, 1, 0), "hangover": (1, 0, 1)}),

    # 4 Nolan sci-fi; recommender repeats a movie the user brought up
    C([
        S("Hi! I'm really into mind-bending sci-fi lately.",
          "I've been meaning to watch @interstellar but haven't gotten around to it.",
          labels=["like", "curious"], raw=["enthusiastic", "interest"], why="User likes mind-bending sci-fi and wants to see Interstellar."),
        R("Hello! Christopher Nolan is the master of that. Did you see @inception?"),
        S("Yes, I loved it! Leonardo DiCaprio was fantastic and the ending blew my mind.",
          labels=["like", "surprise"], raw=["love", "amazed"], why="User loved Inception and was amazed by the ending."),
        R("Then you really should watch @interstellar, it's my top pick for you.",
          "Matthew McConaughey is incredible and the Hans Zimmer score is beautiful."),
        S("Okay that settles it, I'm watching it this weekend.",
          labels=["agreement"], raw=["decided"], why="User agrees to watch Interstellar."),
        R("If you like classic sci-fi too, @matrix is a must."),
        S("Oh man, I watched @matrix in theaters as a teenager. Such good memories.",
          labels=["nostalgia", "like"], raw=["nostalgic", "fond"], why="User fondly remembers seeing The Matrix as a teenager."),
        R("Ha, same here! Keanu Reeves at his best."),
        S("Totally agree. Thanks for the help!",
          labels=["agreement", "grateful"], raw=["agree", "thankful"], why="User agrees and thanks the recommender."),
        R("Anytime, enjoy Interstellar!"),
    ], {"interstellar": (0, 0, 1), "inception": (1, 1, 1), "matrix": (1, 1, 1)}),

    # 5 romance, sad mood
    C([
        R("Hi, how's it going?"),
        S("Not great honestly, had a rough week. I want a good romantic movie to cry to.",
          labels=["negative", "curious"], raw=["sad", "hopeful"], why="User had a rough week and asks for a romantic movie."),
        R("Oh no, sorry to hear that. Have you seen @notebook? It's the ultimate tearjerker."),
        S("I have, and I bawled my eyes out. Ryan Gosling and Rachel McAdams are perfect together.",
          labels=["like"], raw=["moved"], why="User was moved by The Notebook and praises its leads."),
        R("Then maybe @titanic? Leonardo DiCaprio and Kate Winslet, it's a classic love story."),
        S("I watched @titanic when I was 12 and cried for days lol", "I still know all the words to the Celine Dion song",
          labels=["nostalgia", "happy"], raw=["nostalgic", "amused"], why="User fondly recalls watching Titanic as a child."),
        R("Ha! What about something newer like @la_la_land? It's a musical with Ryan Gosling and Emma Stone."),
        S("I didn't like @la_la_land at all, the ending made me so mad.",
          labels=["negative"], raw=["annoyed"], why="User disliked La La Land because of its ending."),
        R("That's fair, it's bittersweet. How about @forrest_gump? It's romantic in its own way and Tom Hanks is wonderful."),
        S("Oh that's a good idea, I haven't seen it in years.",
          labels=["agreement", "nostalgia"], raw=["pleased", "nostalgic"], why="User likes the idea of rewatching Forrest Gump."),
        R("It's perfect for a rainy night."),
        S("Thank you, you're sweet. I feel better already.",
          labels=["grateful", "happy"], raw=["thankful", "comforted"], why="User thanks the recommender and feels better."),
    ], {"notebook": (1, 1, 1), "titanic": (1, 1, 1), "la_la_land": (1, 1, 0), "forrest_gump": (1, 1, 1)}),

    # 6 classic action
    C([
        S("Hello, I'm looking for some classic action movies",
          labels=["curious"], raw=["interest"], why="User asks for classic action movies."),
        R("Hi! Like what, 80s and 90s stuff?"),
        S("Yeah exactly! Stuff I grew up with like @die_hard.", "Bruce Willis was the coolest back then.",
          labels=["nostalgia", "like"], raw=["nostalgic", "admiration"], why="User fondly recalls growing up with Die Hard."),
        R("Totally. Have you seen @terminator?"),
        S("Of course! Arnold Schwarzenegger is a legend.",
          labels=["like"], raw=["admiration"], why="User loves The Terminator and Schwarzenegger."),
        R("Then you'll want @t2 too, it's even better than the first one in my opinion."),
        S("Really? Better than the original? I've never watched it.",
          labels=["surprise", "curious"], raw=["surprised", "curious"], why="User is surprised the sequel is better and has not seen it."),
        R("Yes! Linda Hamilton is a total badass in it and the effects still hold up."),
        S("Wow, okay, I'm definitely watching that. Thank you!",
          labels=["happy", "grateful"], raw=["excited", "thankful"], why="User is excited to watch T2 and thanks the recommender."),
        R("You could also try @gladiator if you want something a bit more epic."),
        S("Meh, I'm not really into sword and sandal stuff.",
          labels=["negative"], raw=["uninterested"], why="User is not interested in Gladiator's genre."),
        R("No worries, T2 is the one then!"),
        S("Sounds good, have a great night",
          labels=["agreement", "grateful"], raw=["agreeable", "friendly"], why="User agrees and says goodbye warmly."),
    ], {"die_hard": (0, 1, 1), "terminator": (1, 1, 1), "t2": (1, 0, 1), "gladiator": (1, 0, 0)}),

    # 7 Tom Hanks; initiatorQuestions empty (answers only in respondentQuestions)
    C([
        R("Hello! What can I help you find?"),
        S("Hi, I'm a huge Tom Hanks fan and I want to see more of his movies.",
          labels=["like", "curious"], raw=["fan", "interest"], why="User is a big Tom Hanks fan looking for more of his films."),
        R("Great choice. Have you seen @cast_away?"),
        S("Yes I have, it was okay but a bit slow for me.",
          labels=["neutral"], raw=["lukewarm"], why="User found Cast Away only okay."),
        R("How about @spr? It's intense but one of his best."),
        S("I haven't seen it! I usually avoid war movies but I'd give it a try for him.",
          labels=["curious", "agreement"], raw=["open", "curious"], why="User is willing to try Saving Private Ryan despite avoiding war movies."),
        R("Matt Damon is in it too. Steven Spielberg directed it."),
        S("Oh nice, I love Spielberg!", "@jurassic_park is one of my favorite movies ever.",
          labels=["like", "happy"], raw=["love", "excited"], why="User loves Spielberg and Jurassic Park."),
        R("Then you'll definitely appreciate it. And if you haven't in a while, watch @toy_story again, Tom Hanks voices Woody!"),
        S("Haha I forgot he was Woody! I'll add both to my list.",
          labels=["surprise", "happy"], raw=["amused", "surprised"], why="User is amused to remember Tom Hanks voices Woody."),
        R("Enjoy!"),
        S("Thanks a lot!", labels=["grateful"], raw=["thankful"], why="User thanks the recommender."),
    ], {"cast_away": (1, 1, 2), "spr": (1, 0, 1), "jurassic_park": (0, 1, 1), "toy_story": (1, 1, 2)},
        initiator_empty=True),

    # 8 smart horror, includes a catalogue movie without KG link
    C([
        S("Hey! Any recommendations for smart horror movies?",
          labels=["curious"], raw=["interest"], why="User asks for smart horror movies."),
        R("Hi! Did you see @get_out? Jordan Peele did an amazing job."),
        S("Yes! I loved it. Daniel Kaluuya was so good.",
          labels=["like"], raw=["love"], why="User loved Get Out and Daniel Kaluuya."),
        R("What about @hereditary? Toni Collette is unbelievable in it."),
        S("I saw @hereditary and honestly it disturbed me too much. I couldn't sleep.",
          labels=["negative"], raw=["disturbed"], why="Hereditary disturbed the user too much."),
        R("Haha, it is rough. Maybe something a bit lighter then, like @quiet_place?"),
        S("Is that the one where they can't make any noise?",
          labels=["curious"], raw=["curious"], why="User asks about A Quiet Place's premise."),
        R("Yes! Emily Blunt and John Krasinski, who also directed it. Very tense but not gory."),
        S("That sounds great actually, I like tension more than gore.",
          labels=["like", "agreement"], raw=["interested", "pleased"], why="User likes the sound of a tense, non-gory film."),
        R("Then I think you'll enjoy it."),
        S("Thank you!! I'll let you know how it goes.",
          labels=["grateful", "happy"], raw=["thankful", "cheerful"], why="User cheerfully thanks the recommender."),
    ], {"get_out": (1, 1, 1), "hereditary": (1, 1, 0), "quiet_place": (1, 0, 1)}),

    # 9 childhood nostalgia
    C([
        R("Hi there, what are you in the mood for?"),
        S("Hello. Honestly I just want something nostalgic from my childhood.",
          labels=["nostalgia"], raw=["wistful"], why="User wants something nostalgic from childhood."),
        R("Did you grow up with Disney? @lion_king maybe?"),
        S("Oh my gosh @lion_king was my whole childhood!", "I cried so hard when Mufasa died.",
          labels=["nostalgia", "like"], raw=["nostalgic", "love"], why="User has strong childhood memories of The Lion King."),
        R("Same! Another one from that era is @home_alone."),
        S("Ha, we watched that every Christmas. Macaulay Culkin setting traps was the best.",
          labels=["nostalgia", "happy"], raw=["fond", "amused"], why="User fondly remembers watching Home Alone at Christmas."),
        R("Or if you want something a bit newer but still nostalgic, @toy_story3 is about growing up."),
        S("I haven't seen the third one. Is it sad?",
          labels=["curious"], raw=["curious"], why="User asks whether Toy Story 3 is sad."),
        R("The ending will make you cry, but in a good way."),
        S("Okay I'm going to watch it, I need a good cry lol.",
          labels=["agreement", "happy"], raw=["decided", "amused"], why="User decides to watch Toy Story 3."),
        R("Enjoy!"),
        S("Thank you so much", labels=["grateful"], raw=["thankful"], why="User thanks the recommender."),
    ], {"lion_king": (1, 1, 1), "home_alone": (1, 1, 1), "toy_story3": (1, 0, 1)}),

    # 10 sci-fi, terse seeker, several "did not say"
    C([
        S("hi", "i'm looking for a sci fi movie",
          labels=["curious"], raw=["neutral", "interest"], why="User briefly asks for a sci-fi movie."),
        R("Hi! Do you like older sci-fi or more modern?"),
        S("doesn't matter really, just something with good effects",
          labels=["neutral"], raw=["indifferent"], why="User has no strong preference."),
        R("@jurassic_park still has amazing effects for 1993",
          "Or @alien if you want something scarier, Sigourney Weaver is iconic."),
        S("seen jurassic park, it was fine. never saw alien",
          labels=["neutral"], raw=["indifferent"], why="User is lukewarm about Jurassic Park and has not seen Alien."),
        R("What about @star_wars? The original is a classic."),
        S("nah, never been a star wars person",
          labels=["negative"], raw=["uninterested"], why="User does not like Star Wars."),
        R("Okay, how about @bttf? Michael J. Fox and Christopher Lloyd, time travel, really fun."),
        S("oh that one sounds fun actually. i'll give it a shot",
          labels=["agreement", "curious"], raw=["interested"], why="User agrees to try Back to the Future."),
        R("Great, hope you enjoy it"),
        S("thx", labels=["grateful"], raw=["thankful"], why="User thanks briefly."),
    ], {"jurassic_park": (1, 1, 2), "alien": (1, 0, 2), "star_wars": (1, 2, 0), "bttf": (1, 0, 1)}),

    # 11 great villains
    C([
        S("Hey, I'm looking for a movie with a great villain.",
          labels=["curious"], raw=["interest"], why="User asks for a movie with a great villain."),
        R("Hello! Easy answer: @dark_knight. Heath Ledger as the Joker is unforgettable."),
        S("Ahh yes, I've seen it like five times. Heath Ledger was unreal.", "Rest in peace.",
          labels=["like", "negative"], raw=["admiration", "sorrow"], why="User admires Heath Ledger's performance and mourns him."),
        R("Totally. Another great villain is Alan Rickman in @die_hard."),
        S("Hans Gruber! Yes, classic.",
          labels=["like", "agreement"], raw=["delight"], why="User agrees Die Hard has a classic villain."),
        R("And for something creepier, Jack Nicholson in @shining."),
        S("I've never seen The Shining, can you believe it?",
          labels=["surprise", "curious"], raw=["embarrassed", "curious"], why="User admits never having seen The Shining."),
        R("You have to! Stanley Kubrick directed it and it's a masterpiece."),
        S("Alright, you've convinced me. Adding it now.",
          labels=["agreement"], raw=["convinced"], why="User agrees to watch The Shining."),
        R("Great, enjoy!"),
        S("Thanks!", labels=["grateful"], raw=["thankful"], why="User thanks the recommender."),
    ], {"dark_knight": (1, 1, 1), "die_hard": (1, 1, 1), "shining": (1, 0, 2)}),

    # 12 comedies with strong female leads, KG-less Knives Out
    C([
        R("Hi! What kind of movies do you like?"),
        S("Hi! I love comedies, especially with strong female leads.",
          labels=["like"], raw=["enthusiastic"], why="User loves comedies with strong female leads."),
        R("Have you seen @bridesmaids? Kristen Wiig wrote and starred in it."),
        S("Yes!! Melissa McCarthy in that movie is the funniest thing ever.",
          labels=["like", "happy"], raw=["love", "amused"], why="User finds Melissa McCarthy in Bridesmaids hilarious."),
        R("Haha she's amazing. Have you tried @knives_out? It's more of a mystery comedy."),
        S("I haven't, what's it about?",
          labels=["curious"], raw=["curious"], why="User asks what Knives Out is about."),
        R("A detective played by Daniel Craig investigates the death of a rich crime novelist. Lots of twists."),
        S("Ooh, I love a good whodunit!",
          labels=["like", "happy"], raw=["excited"], why="User is excited by the whodunit premise."),
        R("Also @frozen if you want something lighter with strong women, the songs are great."),
        S("Lol my niece made me watch @frozen like ten times, I can't do it again.",
          labels=["negative", "happy"], raw=["weary", "amused"], why="User is amused but tired of Frozen."),
        R("Haha fair enough! Knives Out it is."),
        S("Yes, thank you so much!", labels=["grateful", "agreement"], raw=["thankful"], why="User agrees and thanks the recommender."),
    ], {"bridesmaids": (1, 1, 1), "knives_out": (1, 0, 1), "frozen": (1, 1, 0)}),

    # 13 Conjuring universe; recommender repeats a movie the user mentioned
    C([
        S("Hello! I'm obsessed with the Conjuring movies.",
          "I've seen @conjuring and @annabelle but not the others.",
          labels=["like"], raw=["obsessed"], why="User is a big fan of the Conjuring films."),
        R("Hi! Have you seen @conjuring2? It's just as good as the first."),
        S("Not yet! Is it about the Enfield case?",
          labels=["curious"], raw=["curious"], why="User asks about the story of The Conjuring 2."),
        R("Yes, the Warrens go to London. Vera Farmiga and Patrick Wilson are back."),
        S("Yay, I love them together!",
          labels=["happy", "like"], raw=["delighted"], why="User is delighted the leads return."),
        R("Honestly though, @conjuring is still the best one, I'd rewatch it."),
        S("Haha agreed, it's a classic already.",
          labels=["agreement"], raw=["agree"], why="User agrees The Conjuring is a classic."),
        R("If you want more James Wan, try @insidious."),
        S("Oh he made that too? I had no idea!",
          labels=["surprise"], raw=["surprised"], why="User did not know James Wan directed Insidious."),
        R("Yep, with Leigh Whannell writing."),
        S("Cool, I'll watch both. Thanks!",
          labels=["grateful", "happy"], raw=["thankful", "cheerful"], why="User plans to watch both and thanks the recommender."),
    ], {"conjuring": (0, 1, 1), "annabelle": (0, 1, 2), "conjuring2": (1, 0, 1), "insidious": (1, 0, 2)},
        respondent_fb={"annabelle": (0, 1, 1)}),

    # 14 family animation night
    C([
        S("Good evening! Looking for a funny animated movie for a family night.",
          labels=["curious"], raw=["cheerful"], why="User asks for a funny animated film for the family."),
        R("Good evening! How about @shrek? It's funny for both kids and adults."),
        S("We love Shrek! Eddie Murphy as Donkey never gets old.",
          labels=["like", "happy"], raw=["love", "amused"], why="User's family loves Shrek."),
        R("What about @toy_story2?"),
        S("Haven't seen it. Is it as good as the first?",
          labels=["curious"], raw=["curious"], why="User asks whether Toy Story 2 is as good as the first."),
        R("Many people think it's better! Woody gets kidnapped by a toy collector and Buzz leads a rescue mission."),
        S("Haha that sounds fun. The kids will love it.",
          labels=["happy", "agreement"], raw=["pleased"], why="User thinks the kids will love Toy Story 2."),
        R("@up is another family favorite."),
        S("We watched @up last weekend actually, the kids adored the talking dog.",
          labels=["like", "happy"], raw=["fond"], why="User's kids loved Up."),
        R("Then Toy Story 2 is your next one!"),
        S("Perfect, thanks a bunch!", labels=["grateful", "agreement"], raw=["thankful"], why="User agrees and thanks the recommender."),
    ], {"shrek": (1, 1, 1), "toy_story2": (1, 0, 1), "up": (1, 1, 1)}),

    # 15 romantic musical
    C([
        R("Hi! What are you looking for?"),
        S("Hello! I want a romantic movie with great music.",
          labels=["curious"], raw=["interest"], why="User asks for a romantic movie with good music."),
        R("@la_la_land is perfect for that. Ryan Gosling and Emma Stone, and the soundtrack is gorgeous."),
        S("Oh I absolutely adore that movie! City of Stars is my ringtone lol.",
          labels=["like", "happy"], raw=["adore", "amused"], why="User adores La La Land."),
        R("Haha love it. Have you seen @notebook? Also Ryan Gosling."),
        S("No, I haven't. I've heard it's really sad though?",
          labels=["curious"], raw=["wary"], why="User has not seen The Notebook and asks if it is sad."),
        R("It is a bit, but it's beautiful. Rachel McAdams is wonderful."),
        S("Okay, I'll bring tissues. Thanks!",
          labels=["agreement", "grateful"], raw=["agreeable", "thankful"], why="User agrees to watch The Notebook."),
        R("Or @frozen for a lighter musical, hehe."),
        S("Lol not quite what I had in mind but okay.",
          labels=["neutral"], raw=["amused"], why="User is lukewarm about Frozen."),
        R("Enjoy The Notebook!"),
        S("Will do, bye!", labels=["grateful"], raw=["friendly"], why="User says goodbye warmly."),
    ], {"la_la_land": (1, 1, 1), "notebook": (1, 0, 1), "frozen": (1, 2, 2)}),

    # 16 twist endings
    C([
        S("Hi, I'm looking for a movie with a crazy twist ending.",
          labels=["curious"], raw=["interest"], why="User asks for a movie with a twist ending."),
        R("Hello! Have you seen @sixth_sense?"),
        S("Yes! I see dead people lol. That twist got me so good.",
          labels=["like", "surprise"], raw=["amused", "shocked"], why="User loved the twist of The Sixth Sense."),
        R("Haha! M. Night Shyamalan at his best. What about @knives_out?"),
        S("I've seen it, it was just okay for me.",
          labels=["neutral"], raw=["lukewarm"], why="User found Knives Out only okay."),
        R("Hmm, how about @get_out? It has a great twist too."),
        S("I haven't seen it yet! Everyone keeps telling me to.",
          labels=["curious"], raw=["curious"], why="User has not seen Get Out but has heard about it."),
        R("Then it's time! Jordan Peele wrote and directed it."),
        S("Okay, tonight is the night. Thanks!",
          labels=["happy", "grateful"], raw=["excited", "thankful"], why="User decides to watch Get Out tonight."),
        R("You're welcome!"),
    ], {"sixth_sense": (1, 1, 1), "knives_out": (1, 1, 2), "get_out": (1, 0, 2)}),

    # 17 big adventure, Spielberg
    C([
        R("Hey! What kind of movie are you looking for?"),
        S("Hi! I want a big adventure movie, something with dinosaurs or aliens or whatever lol",
          labels=["curious", "happy"], raw=["playful"], why="User playfully asks for a big adventure film."),
        R("Haha @jurassic_park is the obvious choice!"),
        S("Seen it so many times. Jeff Goldblum is my spirit animal.",
          labels=["like", "happy"], raw=["fond", "amused"], why="User loves Jurassic Park and Jeff Goldblum."),
        R("Lol. What about @star_wars? The original 1977 one."),
        S("I grew up on Star Wars, my dad showed me when I was little.",
          labels=["nostalgia", "like"], raw=["nostalgic"], why="User has childhood memories of Star Wars."),
        R("Nice! @bttf also has that Spielberg adventure feel, he produced it."),
        S("Oh wow I didn't know he produced it!", "But yes, I've seen it and it's great.",
          labels=["surprise", "like"], raw=["surprised", "approval"], why="User is surprised Spielberg produced it and likes the film."),
        R("Okay, something you haven't seen... @alien maybe?"),
        S("Hmm, I'm not a fan of horror, is it very scary?",
          labels=["curious", "negative"], raw=["wary"], why="User is wary of horror and asks how scary Alien is."),
        R("It's pretty tense but more sci-fi than slasher."),
        S("Maybe I'll try it in daytime lol. Thank you!",
          labels=["grateful", "agreement"], raw=["amused", "thankful"], why="User may try Alien and thanks the recommender."),
    ], {"jurassic_park": (1, 1, 1), "star_wars": (1, 1, 1), "bttf": (1, 1, 1), "alien": (1, 0, 2)}),

    # 18 October slashers
    C([
        S("Hi! It's October so I want a classic slasher movie.",
          labels=["curious", "happy"], raw=["festive"], why="User wants a seasonal slasher film."),
        R("Hello! The original @halloween is a must. John Carpenter even did the music."),
        S("Oh yes, Jamie Lee Curtis! I watch it every year.",
          labels=["like", "nostalgia"], raw=["fond"], why="User watches Halloween every year."),
        R("Ha, tradition! How about @it then? It came out in 2017."),
        S("I haven't seen that one. Is it gory?",
          labels=["curious"], raw=["curious"], why="User asks if It is gory."),
        R("A bit, but it's mostly creepy. The kids in it are great, Finn Wolfhard is one of them."),
        S("Oh he's from Stranger Things! I'm in.",
          labels=["happy", "agreement"], raw=["excited"], why="User recognizes Finn Wolfhard and agrees to watch It."),
        R("Also @shining is perfect for October."),
        S("Already seen it, loved it. Heeere's Johnny!",
          labels=["like", "happy"], raw=["love", "playful"], why="User loves The Shining."),
        R("A classic. Enjoy It then!"),
        S("Thanks, happy Halloween!", labels=["grateful", "happy"], raw=["thankful", "festive"], why="User thanks the recommender with a festive goodbye."),
    ], {"halloween": (1, 1, 1), "it": (1, 0, 1), "shining": (1, 1, 1)}),

    # 19 comedy, not crude
    C([
        R("Hi there!"),
        S("Hi. I need something funny but not too crude.",
          labels=["curious"], raw=["particular"], why="User asks for a comedy that is not crude."),
        R("Have you seen @hangover?"),
        S("Yes and I didn't like it, way too crude for me.",
          labels=["negative"], raw=["displeased"], why="User disliked The Hangover for being crude."),
        R("Got it. How about @home_alone? Classic, silly, not crude at all."),
        S("Oh I love @home_alone, Joe Pesci getting hit with paint cans lol.",
          labels=["like", "happy"], raw=["love", "amused"], why="User loves Home Alone."),
        R("What about @forrest_gump? It's funny and heartfelt."),
        S("I've seen it and honestly it bored me, it's way too long for me.",
          labels=["negative"], raw=["bored"], why="User found Forrest Gump boring and too long."),
        R("Fair enough. Then maybe @paddington2? It's super sweet and funny, Hugh Grant is hilarious as the villain."),
        S("Hugh Grant as a villain? Now I need to see that!",
          labels=["surprise", "curious"], raw=["surprised", "intrigued"], why="User is surprised and intrigued by Hugh Grant as a villain."),
        R("You won't regret it!"),
        S("Thank you, sounds perfect.", labels=["grateful"], raw=["thankful"], why="User thanks the recommender."),
    ], {"hangover": (1, 1, 0), "home_alone": (1, 1, 1), "forrest_gump": (1, 1, 0), "paddington2": (1, 0, 1)}),

    # 20 fight scenes
    C([
        S("Hey what's up", "I'm looking for an action movie with cool fight scenes",
          labels=["curious", "neutral"], raw=["casual", "interest"], why="User casually asks for an action film."),
        R("Hi! @matrix has some of the best fight scenes ever."),
        S("Oh, the Matrix is the best!!", "Keanu Reeves is my favorite actor",
          labels=["like", "happy"], raw=["love", "excited"], why="User loves The Matrix and Keanu Reeves."),
        R("Same! Have you seen @dark_knight?"),
        S("Yes, great movie, but the fights aren't really the highlight for me.",
          labels=["neutral"], raw=["measured"], why="User gives a measured opinion of The Dark Knight."),
        R("Fair. @gladiator has amazing battle scenes. Russell Crowe is a beast in it."),
        S("Haven't seen it yet, I'll definitely check it out.",
          labels=["agreement", "curious"], raw=["interested"], why="User will check out Gladiator."),
        R("Also @t2 if you like 90s action."),
        S("Love that one, Arnold Schwarzenegger forever",
          labels=["like"], raw=["love"], why="User loves Terminator 2."),
        R("Great, enjoy Gladiator!"),
        S("Thanks man", labels=["grateful"], raw=["thankful"], why="User thanks the recommender."),
    ], {"matrix": (1, 1, 1), "dark_knight": (1, 1, 2), "gladiator": (1, 0, 2), "t2": (1, 1, 1)}),

    # 21 Pixar tearjerkers
    C([
        R("Hello! What can I recommend for you today?"),
        S("Hi! I want a movie that makes me feel something, like @up did.",
          labels=["like"], raw=["moved"], why="User wants an emotional film like Up."),
        R("Aw, the first ten minutes of Up! Have you seen @toy_story3?"),
        S("Yes, the incinerator scene wrecked me. Loved it.",
          labels=["like"], raw=["moved", "love"], why="User was moved by Toy Story 3."),
        R("Then maybe @lion_king? It's older but really emotional."),
        S("Seen it as a kid, still one of my favorites.",
          labels=["nostalgia", "like"], raw=["nostalgic"], why="User fondly remembers The Lion King."),
        R("What about @finding_nemo? It's about a dad looking for his son."),
        S("Oh I never actually watched that one!", "Albert Brooks voices the dad right?",
          labels=["surprise", "curious"], raw=["surprised", "curious"], why="User realizes they never saw Finding Nemo and asks about it."),
        R("Yes! And Ellen DeGeneres is Dory. It's sweet and funny."),
        S("Okay that's going on my list, thank you!",
          labels=["grateful", "agreement"], raw=["thankful"], why="User adds Finding Nemo to the list."),
    ], {"up": (0, 1, 1), "toy_story3": (1, 1, 1), "lion_king": (1, 1, 1), "finding_nemo": (1, 0, 2)}),

    # 22 date night
    C([
        S("Hi! Date night tonight and we can never agree on a movie lol", "He likes action, I like romance.",
          labels=["curious", "happy"], raw=["amused"], why="User asks for a film that suits both partners."),
        R("Haha classic dilemma! How about @titanic? Romance plus a sinking ship."),
        S("We've both seen it. He actually liked it more than me lol",
          labels=["neutral", "happy"], raw=["amused"], why="User is amused that her partner liked Titanic more."),
        R("Okay, what about @inception? Action but with an emotional core."),
        S("Oh that could work! I've only seen it once and I didn't really get it.",
          labels=["curious"], raw=["interested"], why="User is open to rewatching Inception."),
        R("It's even better the second time. Leonardo DiCaprio is great, and Tom Hardy is really fun in it."),
        S("Ooh Tom Hardy, that will sell it to me.",
          labels=["happy", "agreement"], raw=["excited"], why="User is won over by Tom Hardy."),
        R("Or @notebook if you want to win the argument, haha."),
        S("Ha, he'd fall asleep. Inception it is!",
          labels=["agreement", "happy"], raw=["decided", "amused"], why="User picks Inception."),
        R("Have fun!"),
        S("Thank you!!", labels=["grateful"], raw=["thankful"], why="User thanks the recommender."),
    ], {"titanic": (1, 1, 2), "inception": (1, 1, 1), "notebook": (1, 2, 2)}),

    # 23 terse sci-fi horror fan
    C([
        R("hi there, what type of movies are you into?"),
        S("Hi. Sci-fi horror mostly.",
          labels=["neutral"], raw=["matter-of-fact"], why="User states a genre preference plainly."),
        R("Oh nice! @alien is the classic one. Ridley Scott directed it."),
        S("I've seen Alien. Good movie.",
          labels=["like"], raw=["approval"], why="User liked Alien."),
        R("@quiet_place is more recent and really scary."),
        S("Didn't really like @quiet_place, the plot had too many holes.",
          labels=["negative"], raw=["critical"], why="User disliked A Quiet Place's plot."),
        R("Hmm, okay. @matrix isn't horror but it's dark sci-fi."),
        S("Seen it.", labels=["neutral"], raw=["flat"], why="User says only that they have seen The Matrix."),
        R("How about @interstellar? Not horror, but intense."),
        S("Haven't seen that. Maybe.",
          labels=["neutral"], raw=["noncommittal"], why="User is noncommittal about Interstellar."),
        R("Give it a shot, it's a long one but worth it."),
        S("Ok thanks.", labels=["grateful"], raw=["thankful"], why="User thanks the recommender briefly."),
    ], {"alien": (1, 1, 1), "quiet_place": (1, 1, 0), "matrix": (1, 1, 2), "interstellar": (1, 0, 2)}),

    # 24 war movie with grandfather
    C([
        S("Hello, I'm looking for a war movie to watch with my grandfather.",
          labels=["curious"], raw=["caring"], why="User asks for a war movie to share with a grandparent."),
        R("Hi! @spr is one of the best war movies ever made."),
        S("We watched that together years ago. He loved it.",
          labels=["nostalgia", "like"], raw=["nostalgic"], why="User recalls watching Saving Private Ryan with the grandfather."),
        R("That's sweet. Maybe @forrest_gump? Part of it is in Vietnam and Tom Hanks is amazing."),
        S("Oh, that's a great idea, he loves Tom Hanks!",
          labels=["happy", "agreement"], raw=["pleased"], why="User likes the Forrest Gump idea."),
        R("You could also try @gladiator if he likes older history."),
        S("Hmm, no, he's not really into violent stuff anymore.",
          labels=["negative"], raw=["reluctant"], why="User turns down Gladiator as too violent for the grandfather."),
        R("Then Forrest Gump is probably the safer choice."),
        S("Yes, I think so too. Thank you so much, he'll be really happy.",
          labels=["grateful", "agreement"], raw=["thankful", "warm"], why="User agrees and warmly thanks the recommender."),
        R("You're welcome! Enjoy the movie night."),
    ], {"spr": (1, 1, 1), "forrest_gump": (1, 2, 1), "gladiator": (1, 0, 0)}),

    # 25 animation, not childish
    C([
        R("Hi! Looking for anything in particular?"),
        S("Hey. Something animated but not too childish.",
          labels=["curious"], raw=["particular"], why="User asks for an animated film for adults."),
        R("How about @shrek? Lots of jokes for adults."),
        S("I never liked Shrek honestly, the humor annoys me.",
          labels=["negative"], raw=["annoyed"], why="User dislikes Shrek's humour."),
        R("Fair enough! What about @up? It's really moving."),
        S("Oh I loved @up, the opening was beautiful.",
          labels=["like"], raw=["love"], why="User loved Up."),
        R("Then @toy_story is a good classic, Tom Hanks and Tim Allen."),
        S("I haven't seen it since I was a kid!", "Maybe it's time for a rewatch.",
          labels=["nostalgia", "happy"], raw=["nostalgic"], why="User would like to rewatch Toy Story from childhood."),
        R("Definitely! It holds up really well."),
        S("Thanks for the ideas.", labels=["grateful"], raw=["thankful"], why="User thanks the recommender."),
    ], {"shrek": (1, 1, 0), "up": (1, 1, 1), "toy_story": (1, 1, 1)}),

    # 26 Christmas
    C([
        S("Hi there! Looking for Christmas movies for the holidays.",
          labels=["happy", "curious"], raw=["festive"], why="User cheerfully asks for Christmas films."),
        R("Hello! @home_alone is the classic."),
        S("Yes! Watch it every year. Catherine O'Hara yelling KEVIN lol",
          labels=["nostalgia", "happy"], raw=["fond", "amused"], why="User watches Home Alone every year."),
        R("Haha. Have you seen @die_hard? Some say it's a Christmas movie."),
        S("Lol I know that debate! My husband says it counts.",
          labels=["happy", "agreement"], raw=["amused"], why="User is amused by the Die Hard debate."),
        R("@frozen is wintery if you have kids."),
        S("My kids are teens now, they'd roll their eyes lol",
          labels=["neutral"], raw=["amused"], why="User's teenage kids would not want Frozen."),
        R("Ha! What about @paddington2? It's cozy and great for the whole family."),
        S("Oh I've heard great things about it! Adding it to the list.",
          labels=["happy", "agreement"], raw=["pleased"], why="User adds Paddington 2 to the list."),
        R("Happy holidays!"),
        S("Thank you, you too!", labels=["grateful"], raw=["thankful"], why="User thanks and returns the greeting."),
    ], {"home_alone": (1, 1, 1), "die_hard": (1, 2, 2), "frozen": (1, 2, 2), "paddington2": (1, 0, 1)}),

    # 27 Apatow comedies; recommender repeats the user's own mention
    C([
        S("hey, my friends keep quoting @superbad and I still haven't seen it lol",
          "I'm in the mood for a comedy tonight.",
          labels=["curious", "happy"], raw=["amused", "interest"], why="User wants a comedy and is curious about Superbad."),
        R("Hi! Honestly @superbad should be your pick then, Jonah Hill and Michael Cera are hilarious."),
        S("Haha okay, is it a high school movie?",
          labels=["curious"], raw=["curious"], why="User asks about Superbad's setting."),
        R("Yes, two friends trying to get alcohol for a party before graduation. Seth Rogen co-wrote it."),
        S("Sounds dumb in the best way lol",
          labels=["like", "happy"], raw=["amused"], why="User likes the sound of Superbad."),
        R("If you like that, @step_brothers is another great one."),
        S("Oh I've seen that one, Will Ferrell and John C. Reilly are perfect together.",
          labels=["like"], raw=["approval"], why="User likes Step Brothers."),
        R("And @bridesmaids, also produced by Judd Apatow."),
        S("Saw it with my sister, she loved it but I didn't think it was that funny.",
          labels=["negative", "neutral"], raw=["unimpressed"], why="User did not find Bridesmaids very funny."),
        R("Fair enough! So Superbad it is!"),
        S("Yep, thanks!", labels=["grateful", "agreement"], raw=["thankful"], why="User agrees and thanks the recommender."),
    ], {"superbad": (0, 0, 1), "step_brothers": (1, 1, 1), "bridesmaids": (1, 1, 0)}),

    # 28 no sequels please
    C([
        R("Hi! What kind of movies are you in the mood for?"),
        S("Hi, I want a good movie but please no sequels, I'm so tired of them.",
          labels=["negative", "curious"], raw=["tired", "picky"], why="User is tired of sequels and wants something original."),
        R("Ha, understood! Have you seen @get_out? Totally original."),
        S("Yes, one of the best horror movies of the decade!",
          labels=["like"], raw=["enthusiastic"], why="User loves Get Out."),
        R("How about @inception then? Original sci-fi."),
        S("Loved it. Christopher Nolan is a genius.",
          labels=["like"], raw=["admiration"], why="User loved Inception and admires Nolan."),
        R("Okay, one you may not have seen: @la_la_land."),
        S("Not a fan of musicals, sorry.",
          labels=["negative"], raw=["uninterested"], why="User does not like musicals."),
        R("No problem! What about @knives_out? Original mystery, great cast."),
        S("Oh, I haven't watched that one. Chris Evans is in it, right?",
          labels=["curious"], raw=["curious"], why="User asks about the cast of Knives Out."),
        R("Yes, along with Daniel Craig and Jamie Lee Curtis."),
        S("Awesome, that's the one then. Thanks!",
          labels=["happy", "grateful"], raw=["excited", "thankful"], why="User picks Knives Out and thanks the recommender."),
    ], {"get_out": (1, 1, 1), "inception": (1, 1, 1), "la_la_land": (1, 2, 0), "knives_out": (1, 0, 1)}),

    # 29 Leonardo DiCaprio
    C([
        S("Hello, I've been on a Leonardo DiCaprio kick lately.",
          labels=["like"], raw=["enthusiastic"], why="User is into Leonardo DiCaprio films."),
        R("Hi! Have you seen @inception?"),
        S("Yes, loved it!", "And @titanic of course",
          labels=["like"], raw=["love"], why="User loved Inception and Titanic."),
        R("What about @dark_knight? Not DiCaprio but also Christopher Nolan."),
        S("I'm more into DiCaprio than Nolan, but sure, I'll think about it.",
          labels=["neutral"], raw=["noncommittal"], why="User is noncommittal about The Dark Knight."),
        R("Fair! I think you'd like @cast_away too, it's a survival drama like The Revenant."),
        S("I'm surprised I never saw that one. Tom Hanks alone on an island, right?",
          labels=["surprise", "curious"], raw=["surprised", "curious"], why="User realizes they never saw Cast Away."),
        R("Exactly, with Wilson the volleyball."),
        S("Haha I remember the memes. I'll watch it!",
          labels=["happy", "agreement"], raw=["amused"], why="User agrees to watch Cast Away."),
        R("Enjoy!"),
    ], {"inception": (1, 1, 1), "titanic": (0, 1, 1), "dark_knight": (1, 2, 2), "cast_away": (1, 0, 2)}),

    # 30 singing daughter
    C([
        R("Hey there! How can I help?"),
        S("Hi! My daughter loves singing, any musical movies for kids?",
          labels=["curious"], raw=["hopeful"], why="User asks for a children's musical."),
        R("Oh @frozen is the obvious one! Idina Menzel's Let It Go."),
        S("She knows it by heart lol, we love it.",
          labels=["like", "happy"], raw=["love", "amused"], why="User's daughter loves Frozen."),
        R("How about @lion_king? Hakuna Matata!"),
        S("Yes! That was my favorite when I was her age.",
          labels=["nostalgia", "like"], raw=["nostalgic"], why="User loved The Lion King as a child."),
        R("She might also like @la_la_land when she's older, but for now maybe stick to Disney."),
        S("Haha agreed, maybe when she's a teenager.",
          labels=["agreement"], raw=["agree"], why="User agrees La La Land can wait."),
        R("Lion King would be a great one to share with her then."),
        S("Perfect, thank you!", labels=["grateful"], raw=["thankful"], why="User thanks the recommender."),
    ], {"frozen": (1, 1, 1), "lion_king": (1, 1, 1), "la_la_land": (1, 2, 2)}),
]

TEST = [
    C([
        S("Hi, looking for a scary movie tonight!"),
        R("Hey! What scary movies do you like?"),
        S("I really liked @insidious and @conjuring", "Anything with Patrick Wilson honestly lol"),
        R("Then @conjuring2 is perfect, he's the lead again with Vera Farmiga."),
        S("Ooh I haven't seen the sequel yet!"),
        R("You could also watch @annabelle, it's part of the same universe."),
        S("I heard @annabelle wasn't very good though"),
        R("It's not as good as the main ones, true. Stick with The Conjuring 2."),
        S("Will do, thanks!"),
        R("Enjoy!"),
    ], {"insidious": (0, 1, 1), "conjuring": (0, 1, 1), "conjuring2": (1, 0, 1), "annabelle": (1, 0, 0)}),
    C([
        R("Hello! What would you like to watch?"),
        S("Hi! Something animated and heartwarming please."),
        R("Have you seen @up?"),
        S("Yes, I loved it so much."),
        R("What about @finding_nemo?"),
        S("Seen it too, it's cute."),
        R("Then @toy_story3, it's a great ending to the trilogy."),
        S("I haven't seen any of the Toy Story movies actually."),
        R("Oh then start with @toy_story! Tom Hanks and Tim Allen are great."),
        S("Sounds good, I'll start from the beginning.", "Thanks!"),
        R("You're welcome!"),
    ], {"up": (1, 1, 1), "finding_nemo": (1, 1, 1), "toy_story3": (1, 0, 2), "toy_story": (1, 0, 2)}),
    C([
        S("Hey! I'm a big Christopher Nolan fan."),
        R("Nice! Which of his movies do you like most?"),
        S("@dark_knight for sure. Heath Ledger was incredible."),
        R("Agreed! Have you seen @interstellar?"),
        S("No, I haven't! Is it good?"),
        R("It's amazing, Matthew McConaughey and Anne Hathaway travel through a wormhole to save humanity."),
        S("Wow that sounds epic."),
        R("And @inception if you haven't seen it."),
        S("I've seen Inception, it was a bit confusing for me honestly."),
        R("Then Interstellar is the one!"),
        S("Thanks, I'll watch it this weekend."),
    ], {"dark_knight": (0, 1, 1), "interstellar": (1, 0, 1), "inception": (1, 1, 0)}, initiator_empty=True),
    C([
        R("Hi there, what are you looking for?"),
        S("A comedy to cheer me up, I had a terrible day."),
        R("Sorry to hear that! Have you seen @anchorman?"),
        S("Yes, Will Ferrell always makes me laugh."),
        R("@step_brothers is also Will Ferrell and Adam McKay."),
        S("I haven't seen that one!"),
        R("It's hilarious, he and John C. Reilly play grown men who become stepbrothers."),
        S("Haha ok that sounds ridiculous, perfect."),
        R("Or @hangover, if you like party comedies."),
        S("Not really my thing.", "I'll go with Step Brothers, thanks!"),
        R("Feel better!"),
    ], {"anchorman": (1, 1, 1), "step_brothers": (1, 0, 1), "hangover": (1, 2, 0)}),
    C([
        S("Hello, can you suggest a romantic movie?"),
        R("Hi! Have you seen @titanic?"),
        S("Yes, it's one of my favorites. Kate Winslet is amazing."),
        R("What about @notebook?"),
        S("Seen it, not really my thing, way too cheesy."),
        R("How about @la_la_land?"),
        S("Oh I haven't seen that. Is it sad?"),
        R("Bittersweet, but the music is beautiful."),
        S("Ok I'll try it, thank you!"),
        R("You're welcome!"),
    ], {"titanic": (1, 1, 1), "notebook": (1, 1, 0), "la_la_land": (1, 0, 1)}, respondent_empty=True),
    C([
        S("hi, any good sci fi action movies?"),
        R("Hello! @terminator and @t2 are classics."),
        S("Seen both, love Arnold."),
        R("What about @matrix?"),
        S("Of course, I've seen it many times"),
        R("Have you seen @alien? Sigourney Weaver."),
        S("Nope, never saw it", "Is it more horror or action?"),
        R("More horror in the first one, but it's a great sci-fi movie. Ridley Scott directed it."),
        S("Cool, I'll check it out"),
        R("Enjoy!"),
    ], {"terminator": (1, 1, 1), "t2": (1, 1, 1), "matrix": (1, 1, 1), "alien": (1, 0, 2)}),
    C([
        S("Hi! I'm in the mood for a @forrest_gump type of movie"),
        R("Hello! Honestly, if you haven't rewatched @forrest_gump recently, it's worth it!"),
        S("Haha I've seen it like ten times."),
        R("Then try @cast_away, also Tom Hanks and Robert Zemeckis."),
        S("I didn't love Cast Away, too lonely for me."),
        R("Okay! What about @paddington2? It's heartwarming like Forrest Gump."),
        S("A kids movie? Hmm"),
        R("It's great for adults too, Hugh Grant is hilarious in it."),
        S("Ok, I'll give it a chance."),
        R("Great!"),
    ], {"forrest_gump": (0, 1, 1), "cast_away": (1, 1, 0), "paddington2": (1, 0, 2)}),
    C([
        R("Hey! What are you looking for?"),
        S("Something really creepy, old school."),
        R("@shining is my pick, Jack Nicholson is terrifying."),
        S("Seen it, love it."),
        R("@halloween from 1978?"),
        S("Yes, also seen it. Jamie Lee Curtis is great."),
        R("How about @sixth_sense? Creepy, with Bruce Willis."),
        S("I haven't! I've heard about the twist though."),
        R("Try to go in without spoilers!"),
        S("I will, thank you"),
    ], {"shining": (1, 1, 1), "halloween": (1, 1, 1), "sixth_sense": (1, 0, 2)}),
    C([
        S("Hello", "Looking for action with a good story"),
        R("Hi! @gladiator is a great one."),
        S("Russell Crowe! Yes I loved that one."),
        R("What about @die_hard?"),
        S("I've never seen Die Hard, believe it or not."),
        R("You have to, Bruce Willis vs Alan Rickman."),
        S("Ok, I'll put it on the list."),
        R("Also @spr is intense."),
        S("Already seen it, it was too violent for me."),
        R("Understandable. Die Hard it is."),
        S("Thanks!"),
    ], {"gladiator": (1, 1, 1), "die_hard": (1, 0, 2), "spr": (1, 1, 0)}),
    C([
        R("Hi, how can I help?"),
        S("Hi! Looking for an adventure movie for my teenage son."),
        R("@jurassic_park is always a hit."),
        S("He loved it!"),
        R("@bttf?"),
        S("We haven't watched it yet."),
        R("It's super fun, Michael J. Fox travels back to 1955."),
        S("That sounds great, we'll watch it tonight"),
        R("Also @star_wars if he likes space."),
        S("He's more into dinosaurs than space lol", "But thanks, Back to the Future it is"),
        R("Have fun!"),
    ], {"jurassic_park": (1, 1, 1), "bttf": (1, 0, 1), "star_wars": (1, 2, 2)}),
]

# Small conversations for the error-handling tests in redial/invalid_examples/
INVALID_BASE = [
    C([
        S("Hi, can you recommend a funny movie?"),
        R("Sure! Have you seen @home_alone?"),
        S("Yes, I love it."),
        R("Then try @step_brothers."),
        S("Haven't seen it, sounds good."),
        R("Enjoy!"),
        S("Thanks!"),
        R("Bye!"),
    ], {"home_alone": (1, 1, 1), "step_brothers": (1, 0, 1)}),
    C([
        R("Hello! What do you like?"),
        S("Scary movies mostly."),
        R("How about @halloween?"),
        S("Seen it, it's great."),
        R("Then @it might be fun."),
        S("Okay, I'll watch it."),
        R("Have fun!"),
        S("Thanks, bye."),
    ], {"halloween": (1, 1, 1), "it": (1, 0, 1)}),
    C([
        S("Hello, I want a space movie."),
        R("Try @interstellar!"),
        S("Already seen it, loved it."),
        R("Then maybe @alien."),
        S("Sounds good."),
        R("Enjoy!"),
        S("Thanks!"),
        R("Bye!"),
    ], {"interstellar": (1, 1, 1), "alien": (1, 0, 1)}),
    C([
        S("Hi! Any good dinosaur movies?"),
        R("@jurassic_park is the best one."),
        S("Loved it. What about @123456789? My friend mentioned it."),
        R("I don't know that one, sorry. Try @bttf instead, also produced by Steven Spielberg."),
        S("Okay, thanks!"),
        R("Bye!"),
        S("Bye."),
        R("Enjoy!"),
    ], {"jurassic_park": (1, 1, 1), "bttf": (1, 0, 1)}),
]

# --------------------------------------------------------------------------
# Reviews (ECR-style samples: context, resp, rec, knowledge_used)
# --------------------------------------------------------------------------

REVIEWS = [
    ("toy_story", "I watched Toy Story (1995) with my kids last night",
     ["Childhood", "Toy", "Friendship", "Christmas"],
     "I first saw Toy Story in a packed theater when I was seven years old, and I can honestly say it changed how I looked at my own toys forever. Watching it again as an adult, I was surprised by how well it holds up. Tom Hanks gives Woody so much jealousy and warmth at the same time, and Tim Allen makes Buzz Lightyear hilarious without ever turning him into a joke. The animation from Pixar was groundbreaking back then, but what really gets me is the story about friendship and the fear of being replaced. Randy Newman's songs still make me smile, and my kids were singing along by the end. I think this is one of the few animated films that works just as well for parents as for children. I will be watching it again next Christmas."),
    ("toy_story", "Toy Story (1995) is a classic!",
     ["Cowboy", "Friendship"],
     "What a joy. I laughed through the whole thing and got a little teary at the end. John Lasseter and his team made something really special here. Woody and Buzz feel like real friends, and Tom Hanks is perfect as the anxious cowboy who wants to stay the favorite toy. The animation looks simple today, but the heart of this film is bigger than most movies made since."),
    ("toy_story", "I haven't seen that one. I've heard Toy Story (1995) is good.",
     [],
     "Loved it as a kid, love it now. Best animated movie ever."),
    ("conjuring", "I loved The Conjuring (2013)",
     ["Haunted house", "Exorcism", "Basement"],
     "I am not easily scared, but The Conjuring genuinely got under my skin. I watched it alone at night, which was a mistake I will not make again. James Wan knows exactly how long to hold a quiet shot before something moves in the background, and I found myself staring at the corners of the screen. Vera Farmiga and Patrick Wilson play Lorraine and Ed Warren with so much warmth that I actually cared about them, which is rare in a horror film. The clapping scene in the basement made me jump out of my seat. My only complaint is that the ending gets a bit loud compared to the slow dread before it. Still, I slept with the lights on and I do not regret a second of it."),
    ("conjuring", "The Conjuring (2013) is a good one too",
     ["Haunted house", "1970s", "Gore"],
     "A proper old fashioned haunted house movie. No cheap gore, just dread. James Wan builds the scares slowly and Lili Taylor is heartbreaking as the mother who is gradually being taken over. The seventies setting and the music from Joseph Bishara make it feel like a lost classic. If you like horror that respects its audience, this is the one for you."),
    ("conjuring", "Have you seen The Conjuring (2013) ?",
     ["Fear"],
     "Scary scary scary. This movie is so scary. This movie is so scary. This movie is so scary. This movie is so scary. This movie is so scary. This movie is so scary. Vera Farmiga is good. This movie is so scary. This movie is so scary. This movie is so scary."),
    ("titanic", "I still cry at Titanic (1997)",
     ["Ocean liner", "Teenage", "Door"],
     "I was thirteen when my mom took me to see Titanic, and I cried so hard that the people next to us offered me tissues. Rewatching it now, I expected to roll my eyes at the romance, but I fell for it all over again. Leonardo DiCaprio is so charming as Jack, and Kate Winslet gives Rose a fire that makes her escape from her engagement feel earned. James Cameron stages the sinking with such scale that my heart was pounding for the entire last hour. James Horner's music alone brings me right back to my teenage bedroom. Yes, there was room on that door, but I forgive it. This movie simply means too much to me to be objective about it."),
    ("titanic", "Titanic (1997) is a great romance",
     ["Disaster film", "Spectacle"],
     "Titanic is long, but it never feels slow. The first half is a sweeping romance and the second half is a disaster movie that is genuinely terrifying. Kate Winslet and Leonardo DiCaprio have real chemistry, and Kathy Bates is a delight as the unsinkable Molly Brown. Few films combine spectacle and emotion this well. I still get goosebumps when the ship finally breaks in half."),
    ("inception", "I would recommend Inception (2010)",
     ["Dream", "Heist", "Spinning top"],
     "Inception is the kind of movie I want to talk about for hours after the credits roll. Christopher Nolan builds a heist inside dreams, and somehow I never felt lost, even with all the layers. Leonardo DiCaprio carries so much guilt as Cobb that the emotional story hit me harder than I expected. Joseph Gordon-Levitt's hallway fight is one of the coolest things I have ever seen on screen, and Tom Hardy brings a lot of humor. Hans Zimmer's score is so loud and emotional that I still get chills when I hear it. I have watched it four times and I notice something new each time. My friends and I still argue about whether the top falls. It is the rare blockbuster that made me feel smart instead of talked down to."),
    ("inception", "Inception (2010) is another one",
     ["Practical effects", "Exposition"],
     "Smart, loud and beautiful. Christopher Nolan trusts the audience to keep up, which I appreciated. The folding city and the zero gravity fight are incredible practical effects. Elliot Page is a great guide through the rules of the dream world. Some dialogue is pure exposition, but the final act is thrilling from start to finish. I would happily watch it again on the biggest screen I can find."),
    ("forrest_gump", "Forrest Gump (1994) is my favorite",
     ["Father", "American history", "Feather"],
     "Forrest Gump is my dad's favorite movie, and now it is mine too. I watched it with him when I was a kid and didn't understand half of the history, but I understood Forrest's kindness. Tom Hanks gives one of the most sincere performances I have ever seen; he never plays Forrest as a joke. Robin Wright breaks my heart as Jenny, and Gary Sinise as Lieutenant Dan might be my favorite character arc in any film. Robert Zemeckis moves through decades of American history so smoothly. The feather at the beginning and the end gets me every single time. I laughed, I cried, and I called my dad afterwards. Every time I rewatch it I find a new little detail in the background, and I love it a bit more."),
    ("forrest_gump", "Forrest Gump (1994) is a good one",
     ["Soundtrack", "Sentimentality"],
     "A gentle, funny and sad story that stays with you. Tom Hanks is wonderful, and the soundtrack is packed with classics from every decade it covers. Alan Silvestri's feather theme is beautiful. Some parts feel sentimental, but I was moved anyway and I suspect most people will be too. Keep a box of tissues nearby for the last twenty minutes, trust me."),
    ("shining", "The Shining (1980) is a classic!",
     ["Hotel", "Maze", "Snow"],
     "The Shining is the movie that made me afraid of hotel hallways. Stanley Kubrick shoots the Overlook like a maze that keeps changing, and I could never tell which way the rooms connected. Jack Nicholson goes from tired writer to complete madman, and the 'Here's Johnny' scene is iconic for a reason. But for me the real performance is Shelley Duvall, who looks genuinely exhausted and terrified. I watched it on a snowy night and I honestly felt cold the whole time. Wendy Carlos's music is so eerie. It is slow and strange, and I love every minute of it. I have seen it maybe ten times now, and each time I notice another impossible window or a carpet pattern that seems to move. It still gives me chills."),
    ("get_out", "Get Out (2017) was so good",
     ["Racism", "Hypnosis", "Satire"],
     "I went into Get Out knowing nothing and walked out shaking. Jordan Peele made a horror film that is also funny and painfully honest about race, and I don't think I have seen anything like it. Daniel Kaluuya says so much with just his eyes, especially in the sunken place scene, which I still think about. Allison Williams is perfect; I did not see her turn coming at all. Every small awkward moment at the party becomes creepy when you rewatch it. I recommended it to everyone I know, and my whole family watched it together at Thanksgiving. I honestly think it is one of the smartest debuts I have seen in years, and I cannot wait to see what he does next."),
    ("step_brothers", "Step Brothers (2008) is hilarious",
     [],
     "So funny. Will Ferrell and John C. Reilly are the best."),
    ("jurassic_park", "Jurassic Park (1993) is a good one",
     ["Dinosaur", "Tyrannosaurus", "Rain"],
     "Steven Spielberg at the height of his powers. The first time the Brachiosaurus appears, with John Williams' theme swelling, I felt like a kid again. Jeff Goldblum is effortlessly cool, Laura Dern and Sam Neill are great, and the T-Rex in the rain is still one of the best scenes in any adventure film. The effects still look real today, which is more than I can say for most modern blockbusters."),
    ("la_la_land", "I haven't seen that one. I've heard good things about La La Land (2016)",
     ["Jazz", "Audition", "Los Angeles"],
     "La La Land made me fall in love with musicals again. I am usually the person who groans when characters start singing, but Damien Chazelle made every song feel like part of the story. Ryan Gosling and Emma Stone are so charming together, and Emma Stone's audition song made me cry in the theater. Justin Hurwitz's score has been on repeat in my car for weeks. The ending hurt, I will not lie, but it felt honest about dreams and the price of chasing them. I left the cinema sad and happy at the same time."),
    ("dark_knight", "The Dark Knight (2008) is the best superhero movie",
     ["Joker", "Batman", "Gotham City"],
     "Heath Ledger's Joker is one of the greatest villain performances ever put on film. Christopher Nolan turned a comic book movie into a crime epic, and Christian Bale is solid as a tired, cornered Batman. The hospital scene and the interrogation scene are unforgettable. It is long, but there is not a wasted minute in it. Hans Zimmer's droning score keeps the tension high the whole way through."),
    ("up", "Up (2009) made me cry",
     ["Balloon", "Grief", "Dog"],
     "The first ten minutes of Up are the most beautiful and heartbreaking thing Pixar has ever made. I was not ready for it. Ed Asner gives Carl so much grumpy charm, and Russell and Dug the dog made me laugh a lot. Michael Giacchino's music is lovely. A wonderful adventure about grief and letting go. It is funny, sad and hopeful all at once, and perfect for the whole family."),
    ("home_alone", "Home Alone (1990) every Christmas",
     [],
     "Watch it every Christmas. Macaulay Culkin forever."),
]

# --------------------------------------------------------------------------
# INSPIRED dialogues (UniCRS format).  "{key}" renders as the plain title.
# --------------------------------------------------------------------------

INSPIRED_TRAIN = [
    [
        ("R", "Hi there! What kind of movies do you enjoy?"),
        ("S", "Hey! I mostly watch horror movies, the scarier the better."),
        ("R", "Nice! Have you seen {conjuring}? James Wan really knows how to build suspense."),
        ("S", "Yes, I loved it! Vera Farmiga was great."),
        ("R", "Then you might like {insidious}, also directed by James Wan and starring Patrick Wilson."),
        ("S", "I haven't seen that one. What is it about?"),
        ("R", "A couple's son falls into a mysterious coma after they move house, and strange things start happening."),
        ("S", "That sounds creepy. I'll give it a try!"),
        ("R", "Great! If you like it, there is also {get_out}, a clever horror film by Jordan Peele."),
        ("S", "Oh I've heard a lot about that one. Thanks for the suggestions!"),
    ],
    [
        ("R", "Hello! Are you looking for anything special today?"),
        ("S", "Hi, I want a comedy. I've had a long week."),
        ("R", "Do you like Will Ferrell? {anchorman} is one of my favorites."),
        ("S", "I love Will Ferrell! I've seen that one a few times."),
        ("R", "How about {step_brothers}? He's with John C. Reilly and it's ridiculous in the best way."),
        ("S", "Haha I haven't seen it yet. Is it as funny as Anchorman?"),
        ("R", "I think it's even funnier. Adam McKay directed both."),
        ("S", "Perfect, that's what I'll watch tonight."),
    ],
    [
        ("R", "Hi! Who will be watching the movie with you?"),
        ("S", "My two kids, they are 5 and 8. They love animated movies."),
        ("R", "Have they seen {finding_nemo}? Ellen DeGeneres is so funny as Dory."),
        ("S", "Yes, many times! They love the turtles."),
        ("R", "How about {toy_story2}? Tom Hanks and Tim Allen are back as Woody and Buzz."),
        ("S", "We've only seen the first {toy_story}. Is the second one good for kids?"),
        ("R", "Absolutely, it's funny and sweet and has a great message about friendship."),
        ("S", "Sounds great. We'll watch it this weekend, thank you!"),
        ("R", "You're welcome, have fun!"),
    ],
    [
        ("R", "Hey! What genre are you in the mood for?"),
        ("S", "Something sci-fi that makes me think."),
        ("R", "Have you seen {inception}? Christopher Nolan wrote and directed it."),
        ("S", "Yes, I loved it. Leonardo DiCaprio was great."),
        ("R", "Then {interstellar} is a must. Matthew McConaughey and Anne Hathaway travel through a wormhole."),
        ("S", "I heard it was long, is it worth it?"),
        ("R", "Definitely. The Hans Zimmer score alone is worth it, and the ending is very emotional."),
        ("S", "Alright, I'm convinced. Thanks!"),
    ],
    [
        ("R", "Hi, what kind of movie would you like to see?"),
        ("S", "I'd love a romantic movie, something really emotional."),
        ("R", "{notebook} is a classic tearjerker with Ryan Gosling and Rachel McAdams."),
        ("S", "Oh I've seen it, I cried so much! Anything else?"),
        ("R", "How about {la_la_land}? It's a musical with Ryan Gosling and Emma Stone."),
        ("S", "I haven't seen it. I'm not a big fan of musicals though."),
        ("R", "It's more of a love story with music. The songs by Justin Hurwitz are beautiful."),
        ("S", "Okay, I'll give it a chance."),
        ("R", "I hope you enjoy it!"),
    ],
    [
        ("R", "Hello! What kind of movies do you usually watch?"),
        ("S", "Mostly action movies from the 80s and 90s."),
        ("R", "Then you probably know {die_hard} with Bruce Willis."),
        ("S", "Of course, it's my favorite Christmas movie haha."),
        ("R", "Have you seen {t2}? Arnold Schwarzenegger and Linda Hamilton are amazing in it."),
        ("S", "I saw the first {terminator} but never the sequel."),
        ("R", "You should! James Cameron made the sequel even bigger and better."),
        ("S", "Great, I'll watch it this weekend."),
    ],
]

INSPIRED_VALID = [
    [
        ("R", "Hi! What are you looking for today?"),
        ("S", "I'm a big Tom Hanks fan. What should I watch next?"),
        ("R", "Have you seen {forrest_gump}? It's a classic drama."),
        ("S", "Yes, it's one of my favorite movies ever."),
        ("R", "How about {cast_away}? He spends most of the movie alone on an island."),
        ("S", "I haven't seen it! Robert Zemeckis directed that too, right?"),
        ("R", "Yes, and Helen Hunt plays his fiancee."),
        ("S", "Cool, I'll check it out."),
    ],
    [
        ("R", "Hey, what kind of movies do you like?"),
        ("S", "I like mysteries and comedies."),
        ("R", "Then you will love {knives_out}. Daniel Craig plays a detective."),
        ("S", "I saw it in the theater, it was so much fun!"),
        ("R", "How about {sixth_sense}? It's more of a thriller with a great twist."),
        ("S", "I haven't seen it, but I heard about the twist."),
        ("R", "Try to watch it before anyone spoils it. Bruce Willis is great in it."),
        ("S", "Thanks, I will!"),
    ],
]

# Genre words a seeker or recommender may use, linked like DBpedia Spotlight would.
GENRE_ALIASES = [
    ("science fiction", "Science_fiction_film"), ("sci-fi", "Science_fiction_film"),
    ("horror", "Horror_film"), ("comedies", "Comedy_film"), ("comedy", "Comedy_film"),
    ("romantic", "Romance_film"), ("romance", "Romance_film"), ("action", "Action_film"),
    ("animated", "Animation"), ("animation", "Animation"), ("musicals", "Musical_film"),
    ("musical", "Musical_film"), ("thriller", "Thriller_film"), ("drama", "Drama_(film_and_television)"),
    ("superhero", "Superhero_film"), ("war movie", "War_film"),
]


# ==========================================================================
# Writers
# ==========================================================================

def dump_json(path, obj, indent=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(json.dumps(obj, indent=indent))


def dump_jsonl(path, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


MENTION = re.compile(r"@([A-Za-z0-9_]+)")


class IdCounter:
    def __init__(self, start):
        self.next = start
        self.k = 0

    def take(self):
        v = self.next
        self.k += 1
        # the real messageIds increase with occasional gaps
        self.next += 2 if self.k % 4 == 3 else 1
        return v


def build_conversation(conv, cid, initiator, respondent, ids):
    """Render one hand-written conversation into the raw ReDial schema."""
    mentions = OrderedDict()
    messages = []
    t = 0
    prev_len = 0
    k = 0
    for turn in conv["turns"]:
        role, texts = turn[0], turn[1]
        sender = initiator if role == "S" else respondent
        for text in texts:
            def sub(mo):
                key = mo.group(1)
                if key.isdigit():
                    return mo.group(0)  # unknown raw id, left as is (invalid examples)
                m = MOVIE[key]
                mentions[m["rid"]] = m["csv_name"]
                return "@" + m["rid"]
            rendered = MENTION.sub(sub, text)
            if k:
                t += 5 + prev_len // 4 + (k * 7) % 11
            messages.append({"timeOffset": t, "text": rendered, "senderWorkerId": sender,
                             "messageId": ids.take()})
            prev_len = len(rendered)
            k += 1
    mentioned_keys = [k for k in conv["fb"]]
    want = set(MOVIE[k]["rid"] for k in mentioned_keys)
    if want != set(mentions):
        raise ValueError("conversation %s: feedback keys %s != mentioned %s" % (
            cid, sorted(want), sorted(mentions)))

    def questions(fb):
        q = OrderedDict()
        for rid in mentions:
            key = next(k for k in fb if MOVIE[k]["rid"] == rid)
            s, se, li = fb[key]
            q[rid] = OrderedDict([("suggested", s), ("seen", se), ("liked", li)])
        return q

    init_q = questions(conv["fb"])
    resp_fb = dict(conv["fb"])
    resp_fb.update(conv["respondent_fb"])
    resp_q = questions(resp_fb)
    return OrderedDict([
        ("movieMentions", OrderedDict((rid, name) for rid, name in mentions.items())),
        ("respondentQuestions", [] if conv["respondent_empty"] else resp_q),
        ("messages", messages),
        ("conversationId", cid),
        ("respondentWorkerId", respondent),
        ("initiatorWorkerId", initiator),
        ("initiatorQuestions", [] if conv["initiator_empty"] else init_q),
    ])


def render_names(text, movie_mentions):
    return MENTION.sub(lambda mo: movie_mentions.get(mo.group(1), mo.group(0)), text)


def emotion_labels(conv_src, conv_raw):
    """One label record per seeker turn (consecutive seeker messages merged)."""
    out = []
    msgs = iter(conv_raw["messages"])
    turns = []
    for turn in conv_src["turns"]:
        role, texts, lab = turn
        ms = [next(msgs) for _ in texts]
        text = " ".join(render_names(m["text"], conv_raw["movieMentions"]) for m in ms)
        turns.append((role, ms, text, lab))
    for i, (role, ms, text, lab) in enumerate(turns):
        if role != "S":
            continue
        if lab is None:
            raise ValueError("unlabelled seeker turn in %s: %r" % (conv_raw["conversationId"], text))
        history = [("User: " if r == "S" else "Recommender: ") + tx
                   for r, _, tx, _ in turns[max(0, i - 4):i]]
        out.append(OrderedDict([
            ("conversation_id", conv_raw["conversationId"]),
            ("message_ids", [m["messageId"] for m in ms]),
            ("utterance", text),
            ("history", history),
            ("raw", lab["raw"]),
            ("labels", lab["labels"]),
            ("reason", lab["reason"]),
        ]))
    return out


def kg_facts(movie, entity2id, subkg, rel_names, text):
    """KG triples of `movie` whose tail is named in `text` (for knowledge_used)."""
    inv = {v: k for k, v in entity2id.items()}
    facts = []
    for rel, tail in subkg[str(movie["entity_id"])]:
        if rel_names[rel] == "self_loop":
            continue
        lab = label(inv[tail])
        if re.search(r"\b%s\b" % re.escape(lab), text, re.I):
            facts.append("%s's %s is %s" % (movie["name"], rel_names[rel], lab))
    return facts


def kg_entities_in(text, entity2id, items):
    found = []
    for uri, i in entity2id.items():
        if i in items:
            continue
        lab = label(uri)
        mo = re.search(r"\b%s\b" % re.escape(lab), text, re.I if uri.endswith("_film>") or
                       uri in (RES % "Animation",) else 0)
        if mo and lab not in found:
            found.append((mo.start(), lab))
    return [lab for _, lab in sorted(found)]


def link_text(text, entity2id, items):
    """Deterministic stand-in for DBpedia Spotlight: people/companies by exact
    label, genres by the alias list above.  Returns (links, surface names)."""
    spans = []
    for uri, i in entity2id.items():
        if i in items:
            continue
        lab = label(uri)
        for mo in re.finditer(r"\b%s\b" % re.escape(lab), text):
            spans.append((mo.start(), mo.end(), uri, mo.group(0)))
    for alias, name in GENRE_ALIASES:
        for mo in re.finditer(r"\b%s\b" % re.escape(alias), text, re.I):
            spans.append((mo.start(), mo.end(), RES % name, mo.group(0)))
    spans.sort(key=lambda s: (s[0], -(s[1] - s[0])))
    links, names, end = [], [], -1
    for s, e, uri, surf in spans:
        if s < end:
            continue
        links.append(uri)
        names.append(surf)
        end = e
    return links, names


def build_inspired_dialog(dialog, entity2id, items):
    out = []
    for role, text in dialog:
        keys = re.findall(r"\{([a-z0-9_]+)\}", text)
        plain = re.sub(r"\{([a-z0-9_]+)\}", lambda mo: MOVIE[mo.group(1)]["title"], text)
        # link entities on the text with movie titles blanked out
        masked = re.sub(r"\{([a-z0-9_]+)\}", lambda mo: "#" * len(MOVIE[mo.group(1)]["title"]), text)
        links, names = link_text(masked, entity2id, items)
        movies = [MOVIE[k] for k in keys]
        out.append(OrderedDict([
            ("text", plain),
            ("role", "RECOMMENDER" if role == "R" else "SEEKER"),
            ("movie", [m["name"] for m in movies]),
            ("entity_link", links),
            ("entity_name", names),
            ("movie_link", [RES % m["uri"] for m in movies if m["kg"] is not None]),
            ("movie_name", [m["title"] for m in movies if m["kg"] is not None]),
        ]))
    return out


def main():
    entity2id, rel2id, subkg, items = build_kg()
    rel_names = {v: (k if k == "self_loop" else k.rsplit("/", 1)[1][:-1]) for k, v in rel2id.items()}
    item_set = set(items)

    # ---- redial/kg ------------------------------------------------------
    kg_dir = os.path.join(HERE, "redial", "kg")
    dump_json(os.path.join(kg_dir, "entity2id.json"), entity2id)
    dump_json(os.path.join(kg_dir, "relation2id.json"), rel2id)
    dump_json(os.path.join(kg_dir, "relation_set.json"), [ONT % r for r in REDIAL_RELATIONS], indent=2)
    dump_json(os.path.join(kg_dir, "dbpedia_subkg.json"), subkg)
    dump_json(os.path.join(kg_dir, "item_ids.json"), items)
    m2e = OrderedDict()
    for m in MOVIES:
        if m["kg"] is not None:
            m2e[m["rid"]] = OrderedDict([("name", m["name"]), ("dbpedia", RES % m["uri"]),
                                         ("entity_id", m["entity_id"])])
    dump_json(os.path.join(kg_dir, "redial_movieid2entity.json"), m2e)

    # ---- conversations --------------------------------------------------
    train_ids, test_ids = IdCounter(310021), IdCounter(410017)
    train = [build_conversation(c, str(20001 + 37 * i), (i * 7) % 23, 23 + (i * 5) % 11, train_ids)
             for i, c in enumerate(TRAIN)]
    test = [build_conversation(c, str(30002 + 29 * i), 956 + (i * 3) % 17, 975 + i % 6, test_ids)
            for i, c in enumerate(TEST)]
    dump_jsonl(os.path.join(HERE, "redial", "train_data.jsonl"), train)
    dump_jsonl(os.path.join(HERE, "redial", "test_data.jsonl"), test)

    # ---- invalid examples -----------------------------------------------
    bad_ids = IdCounter(990001)
    inv = [build_conversation(c, str(99001 + i), 40 + i, 50 + i, bad_ids) for i, c in enumerate(INVALID_BASE)]
    inv_dir = os.path.join(HERE, "redial", "invalid_examples")
    os.makedirs(inv_dir, exist_ok=True)
    with open(os.path.join(inv_dir, "malformed_line.jsonl"), "w", encoding="utf-8", newline="") as f:
        f.write(json.dumps(inv[0]) + "\n")
        # line 2: truncated record (broken JSON)
        f.write('{"movieMentions": {"%s": "%s"}, "respondentQuestions": {"%s": {"suggested": 1, "seen": \n'
                % (MOVIE["up"]["rid"], MOVIE["up"]["csv_name"], MOVIE["up"]["rid"]))
        f.write(json.dumps(inv[1]) + "\n")
    missing = OrderedDict((k, v) for k, v in inv[2].items() if k != "messages")
    dump_jsonl(os.path.join(inv_dir, "missing_field.jsonl"), [missing])
    dump_jsonl(os.path.join(inv_dir, "unknown_movie.jsonl"), [inv[3]])

    # ---- movies ---------------------------------------------------------
    mention_count = Counter(rid for c in train + test for rid in c["movieMentions"])
    mv_dir = os.path.join(HERE, "redial", "movies")
    os.makedirs(mv_dir, exist_ok=True)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(["movieId", "movieName", "nbMentions"])
    for m in MOVIES:
        w.writerow([m["rid"], m["csv_name"], mention_count[m["rid"]]])
    with open(os.path.join(mv_dir, "movies_with_mentions.csv"), "w", encoding="utf-8", newline="") as f:
        f.write(buf.getvalue())
    id2info = OrderedDict()
    for m in MOVIES:
        kg = m["kg"] or {}
        more = ID2INFO_EXTRA.get(m["key"], {})
        id2info[m["rid"]] = OrderedDict([
            ("name", m["name"]),
            ("genre", m["genres"]),
            ("plot", m["plot"]),
            ("director", m["director"] or [label(x) for x in kg.get("director", [])]),
            ("writer", (m["writer"] or [label(x) for x in kg.get("writer", [])]) + more.get("writer", [])),
            ("star", ((m["star"] or [label(x) for x in kg.get("starring", [])]) + more.get("star", []))[:3]),
            ("imdb_id", m["imdb"]),
        ])
    dump_json(os.path.join(mv_dir, "id2info.json"), id2info)

    # ---- emotion labels -------------------------------------------------
    labels = [rec for src, raw in zip(TRAIN, train) for rec in emotion_labels(src, raw)]
    dump_jsonl(os.path.join(HERE, "emotions", "redial_llm_labels.jsonl"), labels)

    # ---- reviews --------------------------------------------------------
    reviews = []
    for key, first, concepts, text in REVIEWS:
        m = MOVIE[key]
        ents = kg_entities_in(text, entity2id, item_set)
        related = ents + [c for c in concepts if c not in ents]
        facts = kg_facts(m, entity2id, subkg, rel_names, text)
        knowledge = "Movie Name: %s\nRelated Entities: %s\nRelated Knowledge from KG: %s\nFirst Sentence: %s" % (
            m["name"], ", ".join(related) if related else "None",
            ", ".join(facts) if facts else "None", first)
        reviews.append(OrderedDict([("context", ["User: " + first]), ("resp", text),
                                    ("rec", [m["name"]]), ("knowledge_used", knowledge)]))
    dump_jsonl(os.path.join(HERE, "reviews", "imdb_reviews_ecr.jsonl"), reviews)

    # ---- inspired -------------------------------------------------------
    ins_dir = os.path.join(HERE, "inspired")
    ins_rel2id = {ONT % r: i for i, r in enumerate(INSPIRED_RELATIONS)}
    ins_rel2id["self_loop"] = len(INSPIRED_RELATIONS)
    ins_subkg = OrderedDict()
    for h, edges in subkg.items():
        kept = []
        for rel, tail in edges:
            name = rel_names[rel]
            key = "self_loop" if name == "self_loop" else ONT % name
            if key in ins_rel2id:  # previousWork/subsequentWork are not INSPIRED relations
                kept.append([ins_rel2id[key], tail])
        ins_subkg[h] = kept
    dump_json(os.path.join(ins_dir, "entity2id.json"), entity2id)
    dump_json(os.path.join(ins_dir, "relation2id.json"), ins_rel2id)
    dump_json(os.path.join(ins_dir, "relation_set.json"), [ONT % r for r in INSPIRED_RELATIONS], indent=2)
    dump_json(os.path.join(ins_dir, "dbpedia_subkg.json"), ins_subkg)
    dump_json(os.path.join(ins_dir, "item_ids.json"), items)
    ins_train = [build_inspired_dialog(d, entity2id, item_set) for d in INSPIRED_TRAIN]
    ins_valid = [build_inspired_dialog(d, entity2id, item_set) for d in INSPIRED_VALID]
    dump_jsonl(os.path.join(ins_dir, "train_data_dbpedia.jsonl"), ins_train)
    dump_jsonl(os.path.join(ins_dir, "valid_data_dbpedia.jsonl"), ins_valid)

    stats = validate()
    write_readme(stats)
    print(json.dumps(stats, indent=1))


# ==========================================================================
# Validation (re-reads the written files, the way a loader would)
# ==========================================================================

def validate():
    def p(*a):
        return os.path.join(HERE, *a)

    def load(*a):
        with open(p(*a), encoding="utf-8") as f:
            return json.load(f)

    def load_jsonl(*a):
        with open(p(*a), encoding="utf-8") as f:
            return [json.loads(line) for line in f]

    e2i = load("redial", "kg", "entity2id.json")
    r2i = load("redial", "kg", "relation2id.json")
    subkg = load("redial", "kg", "dbpedia_subkg.json")
    items = load("redial", "kg", "item_ids.json")
    m2e = load("redial", "kg", "redial_movieid2entity.json")
    assert load("redial", "kg", "relation_set.json") == [k for k in r2i if k != "self_loop"]
    assert sorted(e2i.values()) == list(range(len(e2i))), "entity ids must be 0..N-1"
    n = len(e2i)
    for h, edges in subkg.items():
        assert 0 <= int(h) < n
        assert [r2i["self_loop"], int(h)] in edges, "missing self loop for %s" % h
        for r, t in edges:
            assert 0 <= r < len(r2i) and 0 <= t < n, (h, r, t)
    assert set(items) <= set(range(n))
    for rid, v in m2e.items():
        assert v["entity_id"] in items and e2i[v["dbpedia"]] == v["entity_id"], rid

    with open(p("redial", "movies", "movies_with_mentions.csv"), encoding="utf-8", newline="") as f:
        catalogue = {r["movieId"]: r for r in csv.DictReader(f)}
    id2info = load("redial", "movies", "id2info.json")
    assert set(id2info) == set(catalogue) and set(m2e) < set(catalogue)
    not_in_kg = sorted(set(catalogue) - set(m2e))

    keys = ["movieMentions", "respondentQuestions", "messages", "conversationId",
            "respondentWorkerId", "initiatorWorkerId", "initiatorQuestions"]
    liked, msg_ids, conv_ids = Counter(), [], []
    n_msgs = 0
    convs = {}
    for split in ("train_data.jsonl", "test_data.jsonl"):
        for c in load_jsonl("redial", split):
            assert list(c) == keys
            conv_ids.append(c["conversationId"])
            convs[c["conversationId"]] = c
            senders = {c["initiatorWorkerId"], c["respondentWorkerId"]}
            assert 8 <= len(c["messages"]) <= 20, c["conversationId"]
            for m in c["messages"]:
                assert m["senderWorkerId"] in senders
                msg_ids.append(m["messageId"])
                for rid in MENTION.findall(m["text"]):
                    assert rid in c["movieMentions"], (c["conversationId"], rid)
                    assert rid in catalogue
            n_msgs += len(c["messages"])
            answers = c["initiatorQuestions"] or c["respondentQuestions"]
            assert set(answers) == set(c["movieMentions"])
            for rid, q in answers.items():
                assert list(q) == ["suggested", "seen", "liked"]
                liked[q["liked"]] += 1
            for rid, name in c["movieMentions"].items():
                assert catalogue[rid]["movieName"] == name
    assert len(msg_ids) == len(set(msg_ids)), "messageIds must be unique"
    assert len(conv_ids) == len(set(conv_ids)), "conversationIds must be unique"

    allowed = {"like", "curious", "happy", "grateful", "negative", "neutral", "nostalgia",
               "agreement", "surprise"}
    labels = load_jsonl("emotions", "redial_llm_labels.jsonl")
    label_counts = Counter()
    for r in labels:
        c = convs[r["conversation_id"]]
        ids = {m["messageId"]: m for m in c["messages"]}
        assert all(ids[i]["senderWorkerId"] == c["initiatorWorkerId"] for i in r["message_ids"])
        assert 1 <= len(r["labels"]) <= 2 and set(r["labels"]) <= allowed
        assert 1 <= len(r["raw"]) <= 2 and len(r["history"]) <= 4
        assert "@" not in r["utterance"]
        label_counts.update(r["labels"])

    reviews = load_jsonl("reviews", "imdb_reviews_ecr.jsonl")
    names = {v["name"] for v in m2e.values()}
    for r in reviews:
        assert list(r) == ["context", "resp", "rec", "knowledge_used"]
        assert r["rec"][0] in names
        assert r["knowledge_used"].startswith("Movie Name: %s\n" % r["rec"][0])
        assert r["knowledge_used"].count("\n") == 3
    wc = [len(r["resp"].split()) for r in reviews]

    ins_e2i = load("inspired", "entity2id.json")
    ins_r2i = load("inspired", "relation2id.json")
    ins_sub = load("inspired", "dbpedia_subkg.json")
    for h, edges in ins_sub.items():
        for r, t in edges:
            assert 0 <= r < len(ins_r2i) and 0 <= t < len(ins_e2i)
    ins = {}
    for split in ("train_data_dbpedia.jsonl", "valid_data_dbpedia.jsonl"):
        ins[split] = load_jsonl("inspired", split)
        for d in ins[split]:
            for t in d:
                assert t["role"] in ("RECOMMENDER", "SEEKER")
                assert len(t["entity_link"]) == len(t["entity_name"])
                assert len(t["movie_link"]) == len(t["movie_name"])
                assert all(l in ins_e2i for l in t["entity_link"] + t["movie_link"])

    # invalid examples behave as advertised
    inv_dir = ("redial", "invalid_examples")
    with open(p(*inv_dir, "malformed_line.jsonl"), encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert len(lines) == 3
    json.loads(lines[0]), json.loads(lines[2])
    try:
        json.loads(lines[1])
        raise AssertionError("line 2 should be broken JSON")
    except json.JSONDecodeError:
        pass
    assert "messages" not in load_jsonl(*inv_dir, "missing_field.jsonl")[0]
    unk = load_jsonl(*inv_dir, "unknown_movie.jsonl")[0]
    assert any("@123456789" in m["text"] for m in unk["messages"])
    assert "123456789" not in unk["movieMentions"] and "123456789" not in catalogue

    train = load_jsonl("redial", "train_data.jsonl")
    test = load_jsonl("redial", "test_data.jsonl")
    total_liked = sum(liked.values())
    return OrderedDict([
        ("train_conversations", len(train)),
        ("test_conversations", len(test)),
        ("messages", n_msgs),
        ("catalogue_movies", len(catalogue)),
        ("kg_linked_movies", len(m2e)),
        ("catalogue_movies_not_in_kg", [catalogue[r]["movieName"] for r in not_in_kg]),
        ("entities", n),
        ("relations", len(r2i)),
        ("kg_edges_without_self_loops", sum(len(v) - 1 for v in subkg.values())),
        ("reviews", len(reviews)),
        ("review_words_min_median_max", [min(wc), sorted(wc)[len(wc) // 2], max(wc)]),
        ("emotion_label_records", len(labels)),
        ("emotion_label_counts", OrderedDict(label_counts.most_common())),
        ("liked_counts", OrderedDict((str(k), liked[k]) for k in (1, 0, 2))),
        ("liked_share", OrderedDict((str(k), round(liked[k] / total_liked, 2)) for k in (1, 0, 2))),
        ("inspired_train_dialogues", len(ins["train_data_dbpedia.jsonl"])),
        ("inspired_valid_dialogues", len(ins["valid_data_dbpedia.jsonl"])),
    ])


def write_readme(st):
    text = """# ecr-ray sample data

A small, **hand-written** dataset that mirrors the layout and the raw schemas of the real data in
`../shared/data` (ReDial, its UniCRS-format DBpedia sub-KG, ECR-style IMDb review samples, LLM
emotion labels and INSPIRED). It exists so that the offline `demo` recipe and the unit tests run
without the real data, and it parses exactly like the real files.

Everything here was written by the ecr-ray project (dialogues, reviews, plot lines, emotion labels)
and is licensed like the project, **Apache-2.0**. Nothing is copied from the real datasets; only
public facts describe real films (titles, years, cast and crew, genres, IMDb ids, DBpedia resource
names, and the DBpedia ontology relation names of the real `relation2id.json`). ReDial movie ids
(`9000xx`), conversation ids, worker ids and message ids are invented.

Regenerate with `python make_sample.py` (stdlib only, deterministic); it also validates the files.

## Layout

```
redial/
  train_data.jsonl, test_data.jsonl      raw ReDial schema (movieMentions, respondentQuestions,
                                         messages, conversationId, respondentWorkerId,
                                         initiatorWorkerId, initiatorQuestions)
  movies/movies_with_mentions.csv        movieId,movieName,nbMentions (CRLF; some names with a
                                         double space before the year, as in the real file)
  movies/id2info.json                    name, genre, plot, director, writer, star, imdb_id
  kg/entity2id.json, relation2id.json, relation_set.json, dbpedia_subkg.json, item_ids.json,
     redial_movieid2entity.json          UniCRS format; the 24 relations + self_loop of the real KG
  invalid_examples/                      malformed_line.jsonl (line 2 is broken JSON),
                                         missing_field.jsonl (no "messages"),
                                         unknown_movie.jsonl (mentions @123456789, in neither
                                         movieMentions nor the catalogue)
reviews/imdb_reviews_ecr.jsonl           context, resp, rec, knowledge_used
emotions/redial_llm_labels.jsonl         one record per seeker turn of the train split
inspired/                                UniCRS-format INSPIRED: train/valid_data_dbpedia.jsonl and its
                                         own KG files (INSPIRED's 12 relations + self_loop; same
                                         entities as the ReDial mini-KG)
```

## Counts

| what | count |
|---|---|
| ReDial train / test conversations | %(train)d / %(test)d |
| messages (train + test) | %(msgs)d |
| catalogue movies (csv, id2info) | %(cat)d |
| movies linked to the KG (items) | %(kgm)d |
| catalogue movies not in the KG | %(nokg)s |
| KG entities / relations / edges (without self loops) | %(ent)d / %(rel)d / %(edges)d |
| review samples (words min / median / max) | %(rev)d (%(wc)s) |
| emotion label records | %(lab)d |
| liked values 1 / 0 / 2 (like / dislike / not said) | %(liked)s |
| INSPIRED train / valid dialogues | %(itr)d / %(iva)d |

## Notes for tests

- Where the real data has an empty `initiatorQuestions` it is an empty **list** (`[]`), and the
  answers are only in `respondentQuestions`; the sample has this in one train and one test
  conversation, and one test conversation has an empty `respondentQuestions` list.
- Some conversations contain consecutive messages by the same sender; the emotion labels merge
  consecutive seeker messages into one turn and list all their `message_ids`.
- In a few conversations the recommender's suggestion is a movie the seeker mentioned earlier.
- The reviews include a few very short ones and one highly repetitive one, for the review filters.
""" % dict(
        train=st["train_conversations"], test=st["test_conversations"], msgs=st["messages"],
        cat=st["catalogue_movies"], kgm=st["kg_linked_movies"],
        nokg=", ".join(x.replace("  ", " ") for x in st["catalogue_movies_not_in_kg"]),
        ent=st["entities"], rel=st["relations"], edges=st["kg_edges_without_self_loops"],
        rev=st["reviews"], wc=" / ".join(str(x) for x in st["review_words_min_median_max"]),
        lab=st["emotion_label_records"],
        liked=" / ".join("%s" % v for v in st["liked_counts"].values()),
        itr=st["inspired_train_dialogues"], iva=st["inspired_valid_dialogues"])
    with open(os.path.join(HERE, "README.md"), "w", encoding="utf-8", newline="") as f:
        f.write(text)


if __name__ == "__main__":
    sys.exit(main())
